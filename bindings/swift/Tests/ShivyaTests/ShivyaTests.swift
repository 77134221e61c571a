import Foundation
import XCTest
@testable import Shivya

final class ShivyaTests: XCTestCase {
    private func nowMs() -> UInt64 { UInt64(ProcessInfo.processInfo.systemUptime * 1000) }

    private func makeNodes(_ n: Int, seed: UInt64) throws -> [ShivyaNode] {
        var nodes: [ShivyaNode] = []
        for i in 0..<n {
            var cfg = defaultConfig()
            cfg.seed = seed + UInt64(i)
            cfg.nVertices = 3
            if let first = nodes.first { cfg.bootstrap = [try first.localAddr()] }
            nodes.append(try ShivyaNode(config: cfg, nowMs: nowMs()))
        }
        return nodes
    }

    private func turn(_ nodes: [ShivyaNode]) throws {
        let wait = try nodes.map { try $0.nextTimeoutMs(nowMs: nowMs()) }.min() ?? 5
        if wait > 0 { usleep(useconds_t(min(wait, 5) * 1000)) }
        let t = nowMs()
        for n in nodes { try n.step(nowMs: t) }
    }

    private func runUntil(_ nodes: [ShivyaNode], _ done: () throws -> Bool) throws {
        let start = Date()
        while try !done() {
            XCTAssertLessThan(Date().timeIntervalSince(start), 10, "condition not reached before the deadline")
            if Date().timeIntervalSince(start) > 10 { return }
            try turn(nodes)
        }
    }

    private func sameRoutes(_ nodes: [ShivyaNode]) throws -> Bool {
        let first = try nodes[0].settle()
        return !first.isEmpty && (try nodes.dropFirst().allSatisfy { try $0.settle() == first })
    }

    func testThreeNodesDiscoverPartitionHealAndAgree() throws {
        let nodes = try makeNodes(3, seed: 1000)
        defer { for n in nodes { try? n.shutdown() } }
        try runUntil(nodes) { try nodes.allSatisfy { try $0.status().peers >= 2 } }
        for (i, n) in nodes.enumerated() {
            try n.recordQueueLen(vertex: UInt32(i), queueLen: 2.0 * Double(i + 1))
            try n.recordOffload(src: UInt32((i + 1) % 3), dst: UInt32((i + 2) % 3), rate: 1.5)
        }
        try runUntil(nodes) { try nodes.allSatisfy { try $0.status().records == 3 } && sameRoutes(nodes) }
        let addrs = try nodes.map { try $0.localAddr() }
        for (a, b) in [(0, 2), (1, 2), (2, 0), (2, 1)] { try nodes[a].block(addr: addrs[b]) }
        try nodes[0].recordQueueLen(vertex: 1, queueLen: 40)
        try nodes[2].recordQueueLen(vertex: 0, queueLen: 25)
        let end = Date().addingTimeInterval(0.6)
        while Date() < end { try turn(nodes) }
        XCTAssertNotEqual(try nodes[0].settle(), try nodes[2].settle())
        for n in nodes { for a in addrs { try n.unblock(addr: a) } }
        try runUntil(nodes) { try sameRoutes(nodes) }
        XCTAssertTrue(try sameRoutes(nodes))
    }

    func testBadArgumentsThrow() throws {
        let node = try makeNodes(1, seed: 1100)[0]
        XCTAssertThrowsError(try node.recordOffload(src: 0, dst: 1, rate: .nan)) { error in
            guard case ShivyaError.InvalidArgument = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try node.recordQueueLen(vertex: 99, queueLen: 1))
        try node.recordQueueLen(vertex: 0, queueLen: 3)
        try node.step(nowMs: nowMs())
        XCTAssertFalse(try node.settle().isEmpty)
        try node.shutdown()
        XCTAssertThrowsError(try node.settle())
    }

    func testBowtieMatchesRust() throws {
        let r = try Reconciler(
            nVertices: 5,
            edges: [Edge(a: 0, b: 1), Edge(a: 0, b: 2), Edge(a: 1, b: 2), Edge(a: 2, b: 3), Edge(a: 2, b: 4), Edge(a: 3, b: 4)],
            triangles: [Triangle(a: 0, b: 1, c: 2), Triangle(a: 2, b: 3, c: 4)]
        )
        let out = try r.reconcile(flow: [1.0, -0.5, 2.25, 0.75, -1.5, 3.0])
        let bits = out.flow.map { String(format: "%016llx", $0.bitPattern) }
        XCTAssertEqual(bits, ["bfd0000000000000", "3fe8000000000000", "3ff0000000000000",
                              "bff0000000000000", "3fd0000000000000", "3ff4000000000000"])
    }
}
