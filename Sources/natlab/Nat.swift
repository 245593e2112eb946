import ArgumentParser

struct Nat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nat",
        abstract: "Look at the NAT routers of a live lab.",
        discussion: """
        NAT behaviours are declared per router with `nat:` in the topology (a preset such as \
        port-restricted-cone, or RFC 4787 fields); see README.md, section "NAT behaviours".
        """,
        subcommands: [NatExplain.self]
    )
}
