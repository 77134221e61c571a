"""Shivya: a consensus-free load-and-state balancing mesh, embedded in-process.

    import shivya
    cfg = shivya.default_config()
    node = shivya.ShivyaNode(cfg, now_ms)
    node.record_queue_len(0, 12.0)
    node.step(now_ms)            # from your event loop; node.fd() is pollable
    print(node.settle())         # [Route(src=0, dst=1, rate=...), ...]

or let a helper drive it: ``asyncio.create_task(shivya.run(node))`` on an asyncio loop,
or ``with shivya.Runner(node): ...`` (a helper thread) in synchronous code.

Errors are raised as ``shivya.ShivyaError`` subclasses (one per C status code:
``InvalidArgument``, ``BufferTooShort``, ``Io``, ``Capacity``, ``Numeric``, ``Panic``,
``Internal``) carrying the library's message. Every object is safe
to use from several threads (calls are serialised by a lock inside).
"""
from .shivya import *  # noqa: F401,F403
from .shivya import (  # noqa: F401
    Edge,
    NodeStatus,
    PeerInfo,
    Reconciled,
    Reconciler,
    Route,
    ShivyaConfig,
    ShivyaError,
    ShivyaNode,
    Triangle,
    default_config,
    version,
)
from .loops import Runner, monotonic_ms, run  # noqa: F401


# `close()` reads naturally in Python (and works with contextlib.closing); it is the
# same call as `shutdown()`.
ShivyaNode.close = ShivyaNode.shutdown
