import ArgumentParser

struct ServeTURN: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "turn", abstract: "TURN relay (not implemented yet).")
    func run() throws { throw ValidationError("natlab serve turn is not implemented yet") }
}
