// Two nodes in one JVM: discover, report load, print the settled routes.
// Compiled and run by bindings/kotlin's Maven build (ExampleTest calls main()).
package example

import uniffi.shivya.*

fun main() {
    val t0 = System.nanoTime()
    fun now(): ULong = ((System.nanoTime() - t0) / 1_000_000L).toULong()

    val a = ShivyaNode(defaultConfig().copy(nVertices = 3u), now())
    val b = ShivyaNode(defaultConfig().copy(nVertices = 3u, seed = 2u, bootstrap = listOf(a.localAddr())), now())
    a.recordQueueLen(0u, 12.0)
    b.recordQueueLen(2u, 3.0)
    val deadline = System.currentTimeMillis() + 3000
    while (System.currentTimeMillis() < deadline && a.status().records < 2uL) {
        val wait = minOf(a.nextTimeoutMs(now()), b.nextTimeoutMs(now()), 5uL)
        if (wait > 0uL) Thread.sleep(wait.toLong())
        a.step(now()); b.step(now())
    }
    println("shivya ${version()} routes:")
    a.settle().forEach { println("  ${it.src} -> ${it.dst} at ${"%.2f".format(it.rate)}") }
    try {
        a.recordQueueLen(0u, Double.NaN)
    } catch (e: ShivyaException.InvalidArgument) {
        println("bad input is an error: ${e.message}")
    }
    listOf(a, b).forEach { it.shutdown(); it.close() }
}
