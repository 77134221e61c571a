//! The panic boundary, the thread's last error, and the checks every pointer and length
//! from C goes through.

use crate::status::shivya_status;
use crate::status::{Error, SHIVYA_ERR_BUFFER_TOO_SHORT, SHIVYA_ERR_PANIC, SHIVYA_OK};
use std::cell::RefCell;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

pub(crate) fn set_last_error(message: &str) {
    LAST_ERROR.with(|l| {
        let mut l = l.borrow_mut();
        l.clear();
        l.push_str(message);
    });
}

pub(crate) fn with_last_error<R>(f: impl FnOnce(&str) -> R) -> R {
    LAST_ERROR.with(|l| f(&l.borrow()))
}

/// Runs `f` inside the panic boundary and turns its outcome into a status, recording the
/// message of any failure as this thread's last error.
pub(crate) fn guard(f: impl FnOnce() -> Result<(), Error>) -> shivya_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => SHIVYA_OK,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            set_last_error(&format!("panic stopped at the C boundary: {what}"));
            SHIVYA_ERR_PANIC
        }
    }
}

/// Like [`guard`] for functions that return a plain value: `fallback` on panic.
pub(crate) fn guard_value<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => {
            set_last_error("panic stopped at the C boundary");
            fallback
        }
    }
}

/// `&T` from a pointer that must not be NULL.
///
/// # Safety
/// `p` is NULL or points to a live, properly aligned `T` for `'a`.
pub(crate) unsafe fn try_ref<'a, T>(p: *const T, what: &str) -> Result<&'a T, Error> {
    // SAFETY: non-null checked here; validity is the caller's documented contract.
    unsafe { p.as_ref() }.ok_or_else(|| Error::invalid(format!("{what} is NULL")))
}

/// `&mut T` from a pointer that must not be NULL.
///
/// # Safety
/// `p` is NULL or points to a live, properly aligned `T`, not aliased, for `'a`.
pub(crate) unsafe fn try_mut<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T, Error> {
    // SAFETY: as for `try_ref`, plus exclusive access per the contract.
    unsafe { p.as_mut() }.ok_or_else(|| Error::invalid(format!("{what} is NULL")))
}

fn check_len<T>(len: usize, what: &str) -> Result<(), Error> {
    let bytes = len.checked_mul(std::mem::size_of::<T>());
    match bytes {
        Some(b) if b <= isize::MAX as usize => Ok(()),
        _ => Err(Error::invalid(format!("{what}: length {len} is too large"))),
    }
}

/// A slice from `(p, len)`; `len == 0` gives an empty slice whatever `p` is.
///
/// # Safety
/// If `len > 0`, `p` is NULL or points to `len` initialised `T`s live for `'a`.
pub(crate) unsafe fn try_slice<'a, T>(
    p: *const T,
    len: usize,
    what: &str,
) -> Result<&'a [T], Error> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::invalid(format!(
            "{what} is NULL but its length is {len}"
        )));
    }
    check_len::<T>(len, what)?;
    // SAFETY: non-null, length bounded, validity per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A mutable slice from `(p, len)`; `len == 0` gives an empty slice.
///
/// # Safety
/// If `len > 0`, `p` is NULL or points to `len` writable `T`s, not aliased, live for `'a`.
pub(crate) unsafe fn try_slice_mut<'a, T>(
    p: *mut T,
    len: usize,
    what: &str,
) -> Result<&'a mut [T], Error> {
    if len == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(Error::invalid(format!(
            "{what} is NULL but its length is {len}"
        )));
    }
    check_len::<T>(len, what)?;
    // SAFETY: as for `try_slice`, plus exclusive access.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

/// A UTF-8 string from a NUL-terminated C string.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string live for `'a`.
pub(crate) unsafe fn try_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-null and NUL-terminated per the contract.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str()
        .map_err(|e| Error::invalid(format!("{what} is not valid UTF-8: {e}")))
}

/// Writes `value` through an out-pointer that must not be NULL.
///
/// # Safety
/// `p` is NULL or points to writable memory for a `T`.
pub(crate) unsafe fn write_out<T>(p: *mut T, value: T, what: &str) -> Result<(), Error> {
    if p.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-null; writable per the contract. `write` does not drop the old value,
    // which may be uninitialised.
    unsafe { p.write(value) };
    Ok(())
}

/// Releases a handle made by `Box::into_raw`; NULL is ignored.
///
/// # Safety
/// `p` is NULL or came from `Box::into_raw` of a `T` and has not been freed.
pub(crate) unsafe fn free_boxed<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: per the contract, `p` owns a live boxed `T`, freed exactly once.
        drop(unsafe { Box::from_raw(p) });
    }
}

/// The `(buf, cap, *len)` convention: writes the item count to `*len`, then the items to
/// `buf` if they fit; otherwise `SHIVYA_ERR_BUFFER_TOO_SHORT` and `buf` is left untouched.
///
/// # Safety
/// `len` is NULL or writable; when `cap > 0`, `buf` is NULL or has room for `cap` items.
pub(crate) unsafe fn fill_buffer<T>(
    buf: *mut T,
    cap: usize,
    len: *mut usize,
    items: &[T],
    what: &str,
) -> Result<(), Error>
where
    T: Copy,
{
    // SAFETY: per the contract.
    unsafe { write_out(len, items.len(), "len")? };
    if items.len() > cap {
        return Err(Error {
            status: SHIVYA_ERR_BUFFER_TOO_SHORT,
            message: format!("{} {what} do not fit in a buffer of {cap}", items.len()),
        });
    }
    // SAFETY: per the contract.
    let out = unsafe { try_slice_mut(buf, cap, "buf")? };
    out[..items.len()].copy_from_slice(items);
    Ok(())
}

/// Whether `len` items at `a` and `len` items at `b` share any byte (by address only; the
/// pointers are not dereferenced).
pub(crate) fn overlaps<T>(a: *const T, b: *const T, len: usize) -> bool {
    let bytes = len.saturating_mul(std::mem::size_of::<T>());
    let (a, b) = (a as usize, b as usize);
    a < b.saturating_add(bytes) && b < a.saturating_add(bytes)
}
