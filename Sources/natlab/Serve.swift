import ArgumentParser

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run one of natlab's servers in the foreground (what `run:` roles start inside a lab).",
        subcommands: [ServeSTUN.self, ServeTURN.self, ServeRendezvous.self]
    )
}
