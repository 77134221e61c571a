//! The few POSIX calls the daemon needs: fork/setsid and descriptor redirection; signals
//! through signal-hook.

use std::ffi::CString;
use std::io;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Routes SIGINT and SIGTERM to the returned stop flag, through signal-hook; a second
/// signal while the flag is already set exits at once with status 130.
pub fn install_signal_handlers() -> io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered first, so it sees the flag before this signal sets it.
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))?;
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    Ok(stop)
}

/// Routes SIGHUP to the returned flag: the daemon re-reads its keyring file.
pub fn install_reload_handler() -> io::Result<Arc<AtomicBool>> {
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))?;
    Ok(reload)
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
