// Host loop for a ShivyaNode in a coroutine. Hand-written beside the UniFFI-generated
// uniffi/shivya/shivya.kt.
package dev.shivya

import com.sun.jna.Library
import com.sun.jna.Native
import com.sun.jna.NativeLong
import com.sun.jna.Structure
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.isActive
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import uniffi.shivya.ShivyaException
import uniffi.shivya.ShivyaNode
import java.util.concurrent.atomic.AtomicBoolean

/** The few libc calls the loop needs (the JVM has no poll on a raw descriptor). */
internal interface LibC : Library {
    fun poll(fds: PollFd, nfds: NativeLong, timeout: Int): Int
    fun pipe(fds: IntArray): Int
    fun write(fd: Int, buf: ByteArray, count: NativeLong): NativeLong
    fun close(fd: Int): Int

    companion object {
        val C: LibC by lazy { Native.load("c", LibC::class.java) }
    }
}

/** `struct pollfd`. */
@Structure.FieldOrder("fd", "events", "revents")
internal open class PollFd : Structure() {
    @JvmField var fd: Int = 0
    @JvmField var events: Short = 0
    @JvmField var revents: Short = 0
}

private const val POLLIN: Short = 1

/** Monotonic milliseconds: the clock [run] uses unless told otherwise. */
fun monotonicMs(): ULong = (System.nanoTime() / 1_000_000L).toULong()

private fun closed(e: ShivyaException) = e.message?.contains("closed") == true

/**
 * Drives this node until the calling coroutine is cancelled (or the node is shut down or
 * closed, which ends it quietly): on a thread of [Dispatchers.IO] it sleeps in poll(2) on the node's
 * socket and a wakeup pipe until the next timer, then steps the node. Cancelling wakes it
 * through the pipe; the thread, the pipe and the descriptors are released before [run]
 * returns. Other coroutines and threads may use the node meanwhile (calls are serialised
 * inside the node).
 *
 *     val job = scope.launch { node.run() }
 *     ...
 *     job.cancelAndJoin()
 */
suspend fun ShivyaNode.run(now: () -> ULong = ::monotonicMs) {
    val node = this
    val pipe = IntArray(2)
    check(LibC.C.pipe(pipe) == 0) { "pipe(2) failed" }
    val stopping = AtomicBoolean(false)
    try {
        coroutineScope {
            val poller = launch(Dispatchers.IO) {
                val fds = PollFd().toArray(2).map { it as PollFd }
                val fd = try {
                    node.fd()
                } catch (e: ShivyaException) {
                    if (closed(e)) return@launch else throw e
                } catch (e: IllegalStateException) {
                    return@launch // destroyed (close()d) before we started
                }
                fds[0].fd = fd
                fds[0].events = POLLIN
                fds[1].fd = pipe[0]
                fds[1].events = POLLIN
                while (isActive && !stopping.get()) {
                    val wait = try {
                        node.step(now())
                        node.nextTimeoutMs(now())
                    } catch (e: ShivyaException) {
                        if (closed(e)) return@launch
                        50uL // a transient failure of one step, counted by the node
                    } catch (e: IllegalStateException) {
                        return@launch // the node was destroyed (close()) under us
                    }
                    fds.forEach { it.write() }
                    LibC.C.poll(fds[0], NativeLong(2), wait.coerceAtMost(60_000uL).toInt())
                }
            }
            try {
                poller.join()
            } finally {
                if (!poller.isCompleted) {
                    stopping.set(true)
                    LibC.C.write(pipe[1], byteArrayOf(1), NativeLong(1))
                    withContext(NonCancellable) { poller.join() }
                }
            }
        }
    } finally {
        LibC.C.close(pipe[0])
        LibC.C.close(pipe[1])
    }
}
