//! nftables in-process, through libnftables: the library the `nft`
//! program is itself built on (Debian's `libnftables1`, installed with
//! `nftables`), loaded at run time.
//!
//! A ban through the program costs a process start and the library's own
//! start-up on every call (about 2.4 ms, more under load); through the
//! library it is one netlink transaction. That difference is most of a
//! ban's latency (`bench/ban-latency.sh`). The commands are the same text
//! `nft -f -` would read, so both paths share one batch builder and one
//! meaning; when the library cannot be loaded, the backend runs the
//! program.
//!
//! The library is reached only through the five functions below, with a
//! context this type owns and uses from one thread at a time (`&mut`).

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr::NonNull;

/// The library's soname.
const SONAME: &str = "libnftables.so.1";

type CtxNew = unsafe extern "C" fn(u32) -> *mut c_void;
type CtxFree = unsafe extern "C" fn(*mut c_void);
type BufferOn = unsafe extern "C" fn(*mut c_void) -> c_int;
type GetBuffer = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type RunCmd = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

/// A loaded libnftables and one context of it.
pub struct LibNftables {
    ctx: NonNull<c_void>,
    ctx_free: CtxFree,
    run_cmd_from_buffer: RunCmd,
    get_error_buffer: GetBuffer,
    // Last: the functions above point into it, so it is dropped after
    // `Drop::drop` has freed the context.
    _library: libloading::Library,
}

// SAFETY: the context is only ever used through `&mut self` (one thread
// at a time); libnftables keeps no thread-local state for a context.
#[allow(unsafe_code)]
unsafe impl Send for LibNftables {}

impl std::fmt::Debug for LibNftables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LibNftables")
    }
}

impl LibNftables {
    /// Loads the library and makes a context whose errors are buffered
    /// (not printed). Fails with why when the library is not there.
    #[allow(unsafe_code)]
    pub fn load() -> Result<LibNftables, String> {
        // SAFETY: loading libnftables runs its initialisers, which only
        // set up its own state (it is a plain C library, no constructors
        // with side effects on the process).
        let library = unsafe { libloading::Library::new(SONAME) }
            .map_err(|e| format!("cannot load {SONAME}: {e}"))?;
        // SAFETY: each symbol is looked up with the C signature the
        // library's header (nftables/libnftables.h) declares for it.
        fn symbol<T: Copy>(library: &libloading::Library, name: &[u8]) -> Result<T, String> {
            // SAFETY: each caller names `T` as the C signature the
            // library's header (nftables/libnftables.h) declares for `name`;
            // the pointer is used only while `library` stays loaded.
            unsafe { library.get::<T>(name) }.map(|s| *s).map_err(|e| format!("{SONAME}: {e}"))
        }
        let ctx_new: CtxNew = symbol(&library, b"nft_ctx_new\0")?;
        let ctx_free: CtxFree = symbol(&library, b"nft_ctx_free\0")?;
        let buffer_error: BufferOn = symbol(&library, b"nft_ctx_buffer_error\0")?;
        let get_error_buffer: GetBuffer = symbol(&library, b"nft_ctx_get_error_buffer\0")?;
        let run_cmd_from_buffer: RunCmd = symbol(&library, b"nft_run_cmd_from_buffer\0")?;
        // SAFETY: `nft_ctx_new(NFT_CTX_DEFAULT)` has no preconditions; a
        // null result is handled.
        let ctx = NonNull::new(unsafe { ctx_new(0) })
            .ok_or_else(|| format!("{SONAME}: nft_ctx_new failed"))?;
        // SAFETY: `ctx` is a live context of this library.
        if unsafe { buffer_error(ctx.as_ptr()) } != 0 {
            // SAFETY: as above; freed once, here, and never used again.
            unsafe { ctx_free(ctx.as_ptr()) };
            return Err(format!("{SONAME}: cannot buffer errors"));
        }
        Ok(LibNftables { ctx, ctx_free, run_cmd_from_buffer, get_error_buffer, _library: library })
    }

    /// Runs `commands` (the text `nft -f -` reads) as one transaction:
    /// all of it applies, or nothing and the library's error text.
    #[allow(unsafe_code)]
    pub fn run(&mut self, commands: &str) -> Result<(), String> {
        let commands = CString::new(commands).map_err(|_| "a NUL byte in commands".to_string())?;
        // SAFETY: `ctx` is our live context, used by this thread only
        // (`&mut self`); `commands` is a NUL-terminated string that
        // outlives the call.
        let status = unsafe { (self.run_cmd_from_buffer)(self.ctx.as_ptr(), commands.as_ptr()) };
        if status == 0 {
            return Ok(());
        }
        // SAFETY: the error buffer is a NUL-terminated string owned by the
        // context, valid until its next command; copied out at once.
        let error = unsafe {
            let text = (self.get_error_buffer)(self.ctx.as_ptr());
            if text.is_null() {
                String::new()
            } else {
                CStr::from_ptr(text).to_string_lossy().trim().to_string()
            }
        };
        Err(if error.is_empty() { format!("libnftables: status {status}") } else { error })
    }
}

impl Drop for LibNftables {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the context is live and freed exactly once, before the
        // library it belongs to is unloaded (field order).
        unsafe { (self.ctx_free)(self.ctx.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_reports_errors_as_text() {
        // Debian's nftables package brings the library; CI installs it.
        let mut nft = LibNftables::load().expect("libnftables.so.1 is installed with nftables");
        // A syntax error is refused before anything reaches the kernel,
        // so this needs no privileges and changes nothing.
        let err = nft.run("add element inet hikeshi-test ban4 { not-an-address }").unwrap_err();
        assert!(err.contains("Error"), "{err}");
        let err = nft.run("nonsense\n").unwrap_err();
        assert!(err.contains("syntax error"), "{err}");
        assert!(nft.run("a\0b").unwrap_err().contains("NUL"));
    }
}
