import dev.shivya.monotonicMs
import dev.shivya.run
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import uniffi.shivya.ShivyaNode
import uniffi.shivya.defaultConfig
import java.io.File

class LoopTest {
    private fun openFds(): Int = File("/proc/self/fd").list()?.size ?: 0

    private fun liveThreads(): Set<Thread> = Thread.getAllStackTraces().keys.filter { it.isAlive }.toSet()

    private fun twoNodes(seed: ULong): List<ShivyaNode> {
        val a = ShivyaNode(defaultConfig().copy(seed = seed, nVertices = 3u), monotonicMs())
        val b = ShivyaNode(
            defaultConfig().copy(seed = seed + 1u, nVertices = 3u, bootstrap = listOf(a.localAddr())),
            monotonicMs(),
        )
        return listOf(a, b)
    }

    @Test
    fun `run drives nodes in coroutines until cancelled and leaves no descriptor or busy thread`() {
        val fds = openFds()
        val (a, b) = twoNodes(940u)
        runBlocking {
            val jobs = listOf(a, b).map { n -> launch(Dispatchers.Default) { n.run() } }
            b.recordQueueLen(1u, 2.5)
            val deadline = System.nanoTime() + 10_000_000_000L
            while (!(a.status().peers == 1uL && b.status().peers == 1uL && a.status().records == 1uL)) {
                assertTrue(System.nanoTime() < deadline, "no discovery under run: ${a.status()} ${b.status()}")
                delay(10)
            }
            val start = System.nanoTime()
            withTimeout(2_000) { jobs.forEach { it.cancelAndJoin() } }
            val tookMs = (System.nanoTime() - start) / 1_000_000
            assertTrue(tookMs < 1_000, "run took $tookMs ms to end after cancel")
        }
        a.close()
        b.close()
        assertEquals(fds, openFds(), "descriptors left open")
        // No thread is left inside poll: every IO worker is parked or gone.
        val stuck = liveThreads().filter { t -> t.stackTrace.any { it.methodName == "poll" && it.className.contains("jna", true) } }
        assertTrue(stuck.isEmpty(), "threads still polling: $stuck")
    }

    @Test
    fun `run ends quietly when the node is closed under it`() {
        val (a, b) = twoNodes(950u)
        b.close()
        runBlocking {
            val job = launch(Dispatchers.Default) { a.run() }
            delay(30)
            a.close()
            withTimeout(2_000) { job.join() }
            assertTrue(job.isCompleted && !job.isCancelled)
            // On an already closed node it returns at once.
            withTimeout(1_000) { a.run() }
        }
    }
}
