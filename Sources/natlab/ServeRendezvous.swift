// `natlab serve rendezvous`: the signalling server agents register with and exchange candidates
// through (JSON lines over TCP; protocol in README "Rendezvous protocol").
import ArgumentParser
import Foundation
import Roles

struct ServeRendezvous: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rendezvous",
        abstract: "Rendezvous (signalling) server: peers register and exchange candidates (JSON lines over TCP)."
    )

    @Option(help: "Address to listen on.") var listen: String = "0.0.0.0"
    @Option(help: "TCP port.") var port: Int = 7000
    @Flag(help: "Log every line in and out on stderr.") var verbose = false

    func run() throws {
        let server = RendezvousServer(log: verbose ? { line in FileHandle.standardError.write(Data((line + "\n").utf8)) } : nil)
        let addr = try server.start(host: listen, port: port)
        FileHandle.standardError.write(Data("natlab: rendezvous listening on \(addr)\n".utf8))
        try server.wait()
    }
}
