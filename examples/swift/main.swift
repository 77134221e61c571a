// Two nodes in one Swift process: discover, report load, print the settled routes.
// Build where a Swift toolchain exists: add this file as an executable target depending
// on the `Shivya` product of bindings/swift (see bindings/swift/README.md).
import Foundation
import Shivya

func nowMs() -> UInt64 { UInt64(ProcessInfo.processInfo.systemUptime * 1000) }

var cfgA = defaultConfig()
cfgA.nVertices = 3
let a = try ShivyaNode(config: cfgA, nowMs: nowMs())
var cfgB = defaultConfig()
cfgB.nVertices = 3
cfgB.seed = 2
cfgB.bootstrap = [try a.localAddr()]
let b = try ShivyaNode(config: cfgB, nowMs: nowMs())

try a.recordQueueLen(vertex: 0, queueLen: 12)
try b.recordQueueLen(vertex: 2, queueLen: 3)
let deadline = Date().addingTimeInterval(3)
while Date() < deadline, try a.status().records < 2 {
    let wait = min(try a.nextTimeoutMs(nowMs: nowMs()), try b.nextTimeoutMs(nowMs: nowMs()), 5)
    usleep(useconds_t(wait * 1000))
    try a.step(nowMs: nowMs())
    try b.step(nowMs: nowMs())
}
print("shivya \(version()) routes:")
for r in try a.settle() { print("  \(r.src) -> \(r.dst) at \(r.rate)") }
do {
    try a.recordQueueLen(vertex: 0, queueLen: .nan)
} catch {
    print("bad input is an error: \(error)")
}
try a.shutdown()
try b.shutdown()
