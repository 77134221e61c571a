package shivya

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// Run drives the node until ctx is done: it waits, without spinning, until the node's
// socket is readable or its next timer is due, then calls Step. now is the host's
// monotonic clock in milliseconds, the same one the host passes to Pick and the request
// reports. Run returns ctx.Err() when ctx is done, or the first error that is not
// transient (a closed node, a failed poll); a failed Step is retried on the next wakeup,
// as the node counts it and keeps its state. It holds no lock while it waits, so other
// goroutines may use the node meanwhile; run it on its own goroutine:
//
//	ctx, cancel := context.WithCancel(context.Background())
//	done := make(chan error, 1)
//	go func() { done <- node.Run(ctx, now) }()
//	...
//	cancel(); <-done
//
// Run leaves no goroutine and no descriptor behind: a cancel wakes it through a pipe
// (written by the short goroutine context.AfterFunc runs), and both the pipe and that
// goroutine are gone before Run returns.
func (n *Node) Run(ctx context.Context, now func() uint64) error {
	if now == nil {
		return &Error{Status: InvalidArgument, Message: "Run: now is nil"}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return err
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		_, _ = unix.Write(pipe[1], []byte{1})
	})
	defer func() {
		// The wakeup may be running: let it finish before its descriptor is closed (and
		// its number reused by someone else).
		if !stop() {
			<-fired
		}
		unix.Close(pipe[0])
		unix.Close(pipe[1])
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		fd := n.Fd()
		if fd < 0 {
			return ErrClosed
		}
		wait, err := n.NextTimeoutMs(now())
		if err != nil {
			return err
		}
		timeout := int(min(wait, 60_000))
		fds := []unix.PollFd{
			{Fd: int32(fd), Events: unix.POLLIN},
			{Fd: int32(pipe[0]), Events: unix.POLLIN},
		}
		if _, err := unix.Poll(fds, timeout); err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
		if fds[1].Revents != 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if err := n.Step(now()); errors.Is(err, ErrClosed) {
			return err
		}
	}
}

// MonotonicClock returns a clock in milliseconds since the call, from Go's monotonic time:
// the usual now for NewNode, Run and the request reports.
func MonotonicClock() func() uint64 {
	start := time.Now()
	return func() uint64 { return uint64(time.Since(start).Milliseconds()) }
}
