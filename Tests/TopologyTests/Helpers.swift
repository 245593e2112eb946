import Foundation
import NATModel
@testable import Topology

enum JSONEncoderShim {
    static func encode(_ plan: LabPlan) throws -> Data { try JSONEncoder().encode(plan) }
    static func decode(_ data: Data) throws -> LabPlan { try JSONDecoder().decode(LabPlan.self, from: data) }
}

enum NATProfileProbe {
    static func cgnat() throws -> NATProfile { try NATProfile.parse(preset: "cgnat") }
}
