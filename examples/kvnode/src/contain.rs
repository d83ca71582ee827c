//! Panics of the store, contained. redb detects most damage to its file
//! and reports it, but some bit flips make it panic while opening or
//! reading; a member must report a damaged file, not crash on it. The
//! start-up work on the store (open, integrity check, restore) runs inside
//! [`contained`], which turns such a panic into an error carrying its
//! message, without printing a panic report for it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

/// Serializes the hook swaps of threads containing at once.
static SWAP: Mutex<()> = Mutex::new(());

thread_local! {
    /// Set while this thread runs inside `contained`: a nested call runs
    /// its work directly, and the outer one catches.
    static CONTAINING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, returning its panic's message as an error instead of
/// unwinding past the caller. Panics on other threads meanwhile are
/// reported as usual; one thread contains at a time.
pub(crate) fn contained<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    if CONTAINING.with(|c| c.get()) {
        return Ok(f());
    }
    let _swap = SWAP.lock().unwrap_or_else(|e| e.into_inner());
    CONTAINING.with(|c| c.set(true));
    let me = std::thread::current().id();
    let caught: Arc<Mutex<Option<String>>> = Arc::default();
    let previous: Arc<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync> =
        Arc::from(std::panic::take_hook());
    {
        let (caught, previous) = (caught.clone(), previous.clone());
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().id() == me {
                if let Ok(mut c) = caught.lock() {
                    *c = Some(info.to_string());
                }
            } else {
                previous(info);
            }
        }));
    }
    let result = catch_unwind(AssertUnwindSafe(f));
    CONTAINING.with(|c| c.set(false));
    drop(std::panic::take_hook());
    std::panic::set_hook(Box::new(move |info| previous(info)));
    result.map_err(|_| {
        caught
            .lock()
            .ok()
            .and_then(|mut c| c.take())
            .unwrap_or_else(|| "the store panicked".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_the_hook_comes_back() {
        assert_eq!(contained(|| 7), Ok(7));
        let err = contained(|| -> u32 { panic!("page 12 checksum") }).expect_err("caught");
        assert!(err.contains("page 12 checksum"), "{err}");
        // Still contained a second time (the hook was put back and taken
        // again), and a plain panic afterwards still unwinds as usual.
        assert!(contained(|| -> u32 { panic!("again") }).is_err());
        // Nested: the inner call runs directly, the outer one catches.
        let nested = contained(|| contained(|| -> u32 { panic!("deep") }));
        assert!(nested.expect_err("outer caught").contains("deep"));
        assert!(catch_unwind(|| panic!("ordinary")).is_err());
    }
}
