import ArgumentParser

struct ServeSTUN: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stun", abstract: "STUN server (not implemented yet).")
    func run() throws { throw ValidationError("natlab serve stun is not implemented yet") }
}
