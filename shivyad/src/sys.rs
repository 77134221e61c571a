//! The few POSIX calls the daemon needs: fork/setsid, descriptor redirection, signals.

use std::ffi::CString;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    if STOP.swap(true, Ordering::SeqCst) {
        // Second signal: leave at once. `_exit` is async-signal-safe.
        // SAFETY: terminating the process is always sound here.
        unsafe { libc::_exit(130) };
    }
}

/// Routes SIGINT and SIGTERM to the stop flag (a second one exits immediately).
pub fn install_signal_handlers() -> io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a plain handler and an empty mask is valid; the
        // handler only touches an atomic and calls `_exit`.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Whether a stop was requested.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

fn open_for_append(path: &Path) -> io::Result<libc::c_int> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: `c` is a valid NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        Err(io::Error::new(
            io::Error::last_os_error().kind(),
            format!(
                "cannot open {}: {}",
                path.display(),
                io::Error::last_os_error()
            ),
        ))
    } else {
        Ok(fd)
    }
}

/// Detaches: fork (the parent exits 0), setsid, stdin from /dev/null, stdout and stderr
/// appended to the given files. Called before any socket, thread or logger exists.
pub fn daemonize(stdout: &Path, stderr: &Path) -> io::Result<()> {
    // Open the files first so a bad path is reported by the parent, on the terminal.
    let out = open_for_append(stdout)?;
    let err = open_for_append(stderr)?;
    // SAFETY: single-threaded at this point (nothing has started yet), so fork is sound.
    match unsafe { libc::fork() } {
        -1 => return Err(io::Error::last_os_error()),
        0 => {}
        // SAFETY: the parent leaves without running destructors or atexit handlers twice.
        _ => unsafe { libc::_exit(0) },
    }
    // SAFETY: plain syscalls on descriptors we own.
    unsafe {
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::close(null);
        }
        libc::dup2(out, 1);
        libc::dup2(err, 2);
        libc::close(out);
        libc::close(err);
    }
    Ok(())
}
