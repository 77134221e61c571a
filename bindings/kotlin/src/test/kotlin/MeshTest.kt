import uniffi.shivya.*
import org.junit.jupiter.api.Assertions.*
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

class MeshTest {
    private fun nowMs(): ULong = (System.nanoTime() / 1_000_000L).toULong()

    private fun makeNodes(n: Int, seed: ULong): List<ShivyaNode> {
        val nodes = mutableListOf<ShivyaNode>()
        for (i in 0 until n) {
            val boot = if (nodes.isEmpty()) listOf() else listOf(nodes[0].localAddr())
            val cfg = defaultConfig().copy(seed = seed + i.toULong(), nVertices = 3u, bootstrap = boot)
            nodes.add(ShivyaNode(cfg, nowMs()))
        }
        return nodes
    }

    /** The JVM has no portable poll on a raw fd: wait for the earliest node timer, capped. */
    private fun turn(nodes: List<ShivyaNode>) {
        val wait = nodes.minOf { it.nextTimeoutMs(nowMs()) }.coerceAtMost(5u)
        if (wait > 0u) Thread.sleep(wait.toLong())
        val t = nowMs()
        nodes.forEach { it.step(t) }
    }

    private fun runUntil(nodes: List<ShivyaNode>, deadlineMs: Long = 10_000, done: () -> Boolean): Long {
        val start = System.currentTimeMillis()
        while (!done()) {
            assertTrue(System.currentTimeMillis() - start < deadlineMs, "condition not reached before the deadline")
            turn(nodes)
        }
        return System.currentTimeMillis() - start
    }

    private fun sameRoutes(nodes: List<ShivyaNode>): Boolean {
        val first = nodes[0].settle()
        return first.isNotEmpty() && nodes.drop(1).all { it.settle() == first }
    }

    @Test
    fun threeNodesDiscoverPartitionHealAndAgree() {
        val nodes = makeNodes(3, 800u)
        try {
            val ms = runUntil(nodes) { nodes.all { it.status().peers >= 2uL } }
            println("kotlin: discovery in $ms ms")
            // Every node writes every vertex and one shared edge, with values inexact in
            // binary: a node summing records in another order would differ in the last bits.
            nodes.forEachIndexed { i, n ->
                for (v in 0 until 3) n.recordQueueLen(v.toUInt(), (v + 1) * (0.1 * (i + 1) + 1.0 / 3.0))
                n.recordOffload(0u, 1u, 0.1 + i / 3.0)
            }
            runUntil(nodes) { nodes.all { it.status().records == 3uL } && sameRoutes(nodes) }

            val addrs = nodes.map { it.localAddr() }
            for ((a, b) in listOf(0 to 2, 1 to 2, 2 to 0, 2 to 1)) nodes[a].block(addrs[b])
            nodes[0].recordQueueLen(1u, 40.1)
            nodes[2].recordQueueLen(0u, 25.3)
            val end = System.currentTimeMillis() + 600
            while (System.currentTimeMillis() < end) turn(nodes)
            assertNotEquals(nodes[0].settle(), nodes[2].settle(), "sides agree while cut off")

            nodes.forEach { n -> addrs.forEach { n.unblock(it) } }
            val healed = runUntil(nodes) { sameRoutes(nodes) }
            println("kotlin: converged $healed ms after heal")
            assertTrue(nodes[0].settle().all { it.rate > 0.0 })
        } finally {
            nodes.forEach { it.shutdown(); it.close() }
        }
    }

    @Test
    fun badArgumentsRaiseShivyaErrorsAndTheNodeKeepsWorking() {
        val node = makeNodes(1, 900u)[0]
        val nan = assertThrows<ShivyaException.InvalidArgument> { node.recordOffload(0u, 1u, Double.NaN) }
        assertTrue(nan.message!!.contains("rate"), nan.message)
        val unknown = assertThrows<ShivyaException.InvalidArgument> { node.recordQueueLen(99u, 1.0) }
        assertTrue(unknown.message!!.contains("vertex 99"), unknown.message)
        node.recordQueueLen(0u, 3.0)
        node.step(nowMs())
        assertTrue(node.settle().isNotEmpty())
        node.shutdown()
        val closed = assertThrows<ShivyaException.InvalidArgument> { node.settle() }
        assertTrue(closed.message!!.contains("closed"), closed.message)
        node.shutdown()
        node.close()
    }

    @Test
    fun aSignedEncryptedPairAdmitsEachOtherAndRotatesKeys() {
        val secrets = List(2) { generateIdentity() }
        val keys = secrets.map { publicKeyOf(it) }
        assertEquals(32, secrets[0].size)
        assertFalse(keys[0].contentEquals(keys[1]))
        val k1 = KeyringKey(1u, ByteArray(32) { 0x11 }, true)
        val nodes = mutableListOf<ShivyaNode>()
        for (i in 0 until 2) {
            val boot = if (nodes.isEmpty()) listOf() else listOf(nodes[0].localAddr())
            val cfg = defaultConfig().copy(
                seed = 950u + i.toULong(), nVertices = 3u, bootstrap = boot,
                identitySecret = secrets[i], admitKeys = keys, keyring = listOf(k1),
            )
            nodes.add(ShivyaNode(cfg, nowMs()))
        }
        try {
            nodes.forEachIndexed { i, n -> assertArrayEquals(keys[i], n.publicKey()) }
            nodes[0].recordQueueLen(0u, 1.5)
            nodes[1].recordQueueLen(1u, 2.5)
            runUntil(nodes) {
                nodes.all { it.status().records == 2uL } && nodes[0].viewDigest() == nodes[1].viewDigest()
            }
            val k2 = KeyringKey(2u, ByteArray(32) { 0x22 }, false)
            nodes.forEach { it.setKeyring(listOf(k1, k2)) }
            nodes.forEach { it.setKeyring(listOf(k1.copy(primary = false), k2.copy(primary = true))) }
            nodes.forEach { it.setKeyring(listOf(k2.copy(primary = true))) }
            val dropped = nodes[1].status().dropped
            nodes[0].recordQueueLen(2u, 4.0)
            runUntil(nodes) { nodes[0].viewDigest() == nodes[1].viewDigest() }
            assertEquals(dropped, nodes[1].status().dropped)
            assertThrows<ShivyaException.InvalidArgument> {
                nodes[0].setKeyring(listOf(KeyringKey(3u, ByteArray(5), true)))
            }
            assertThrows<ShivyaException.InvalidArgument> { nodes[0].setKeyring(listOf()) }
            assertThrows<ShivyaException.InvalidArgument> { publicKeyOf(ByteArray(31)) }
            val e = assertThrows<ShivyaException.InvalidArgument> {
                ShivyaNode(defaultConfig().copy(admitKeys = keys), nowMs())
            }
            assertTrue(e.message!!.contains("identity"), e.message)
            val plain = ShivyaNode(defaultConfig(), nowMs())
            assertNull(plain.publicKey())
            assertThrows<ShivyaException.InvalidArgument> { plain.setKeyring(listOf(k1)) }
            plain.shutdown()
            plain.close()
        } finally {
            nodes.forEach { it.shutdown(); it.close() }
        }
    }

    @Test
    fun bowtieReconciliationMatchesRust() {
        val r = Reconciler(
            5u,
            listOf(Edge(0u, 1u), Edge(0u, 2u), Edge(1u, 2u), Edge(2u, 3u), Edge(2u, 4u), Edge(3u, 4u)),
            listOf(Triangle(0u, 1u, 2u), Triangle(2u, 3u, 4u)),
        )
        val out = r.reconcile(listOf(1.0, -0.5, 2.25, 0.75, -1.5, 3.0))
        val bits = out.flow.map { String.format("%016x", java.lang.Double.doubleToRawLongBits(it)) }
        val golden = java.io.File(System.getProperty("shivya.testdata"), "bowtie.json").readText()
        val expected = Regex("\"([0-9a-f]{16})\"").findAll(golden).map { it.groupValues[1] }.toList()
        assertEquals(expected, bits)
    }
}
