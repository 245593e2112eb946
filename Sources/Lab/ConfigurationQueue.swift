import Synchronization
import Topology

/// The configuration groups of a build (one node's links, addresses, routes and sysctls each; not the
/// rulesets), shared by the build's two workers.
///
/// The links worker takes them in plan order from the front. The other worker loads the routers'
/// rulesets first, which takes less time than the links (two-homes: ~4 ms against ~5.3 ms); it then
/// takes groups from the back, so that the two meet in the middle instead of one waiting for the
/// other. It takes a group only when every group it depends on is done — the ones that create its
/// interfaces, i.e. the far ends of its veths — and otherwise leaves the rest to the links worker.
///
/// Why the links worker never meets a group whose prerequisite the other one still runs: that other
/// worker takes a group only once every later group is taken, and prerequisites come earlier in plan
/// order; the links worker, taking groups in order, has by then taken every earlier one itself.
final class ConfigurationQueue: Sendable {
    let groups: [[BuildStep]]
    /// `prerequisites[i]`: the groups that create group i's interfaces (they put a veth's far end in its node).
    let prerequisites: [[Int]]

    private struct State {
        var front = 0
        var back: Int
        var done: Set<Int> = []
        var stopped = false
    }
    private let state: Mutex<State>

    init(_ groups: [[BuildStep]]) {
        self.groups = groups
        prerequisites = Self.prerequisites(of: groups)
        state = Mutex(State(back: groups.count))
    }

    static func prerequisites(of groups: [[BuildStep]]) -> [[Int]] {
        groups.indices.map { i in
            let node = groups[i][0].node
            return groups.indices.filter { j in
                j != i && groups[j].contains { step in
                    if case .addVeth(_, _, _, let peerNode, _) = step { peerNode == node } else { false }
                }
            }
        }
    }

    /// The next group in plan order, nil when none is left or the build has stopped.
    func takeFront() -> Int? {
        state.withLock { s in
            guard !s.stopped, s.front < s.back else { return nil }
            s.front += 1
            return s.front - 1
        }
    }

    /// The last group not taken yet if everything it depends on is done, else nil (and then the links
    /// worker does the rest).
    func takeBack() -> Int? {
        state.withLock { s in
            guard !s.stopped, s.front < s.back, prerequisites[s.back - 1].allSatisfy(s.done.contains) else { return nil }
            s.back -= 1
            return s.back
        }
    }

    func finish(_ index: Int) {
        state.withLock { _ = $0.done.insert(index) }
    }

    /// After a failure: neither worker starts another group.
    func stop() {
        state.withLock { $0.stopped = true }
    }
}
