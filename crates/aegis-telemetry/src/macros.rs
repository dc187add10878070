//! Logging macros that name the function they are called from: `function` on every JSON
//! line (SPEC.md, "Logs"). They are `tracing`'s macros with a `function` field added, so
//! `aegis_telemetry::warn!(peer_id = %id, "text {x}")` is `tracing::warn!` plus the name of
//! the enclosing function (closures and async blocks resolve to the function around them).

/// The name of the function this expands in, such as `accept_loop`.
#[macro_export]
macro_rules! function_name {
    () => {{
        fn here() {}
        $crate::fn_name_of(::core::any::type_name_of_val(&here))
    }};
}

/// The function's own name from the type name of an item declared inside it
/// (`crate::module::Type::function::{{closure}}::here` gives `function`).
#[doc(hidden)]
pub fn fn_name_of(path: &'static str) -> &'static str {
    let mut path = path.strip_suffix("::here").unwrap_or(path);
    while let Some(outer) = path.strip_suffix("::{{closure}}") {
        path = outer;
    }
    path.rsplit("::").next().unwrap_or(path)
}

macro_rules! level_macro {
    ($d:tt $name:ident) => {
        #[doc = concat!("`tracing::", stringify!($name), "!` with the enclosing function's name as `function`.")]
        #[macro_export]
        macro_rules! $name {
            (target: $d target:expr, $d($d rest:tt)+) => {
                $crate::__tracing::$name!(target: $d target, function = $crate::function_name!(), $d($d rest)+)
            };
            ($d($d rest:tt)+) => {
                $crate::__tracing::$name!(function = $crate::function_name!(), $d($d rest)+)
            };
        }
    };
}

level_macro!($ error);
level_macro!($ warn);
level_macro!($ info);
level_macro!($ debug);
level_macro!($ trace);

#[cfg(test)]
mod tests {
    fn named_function() -> &'static str {
        crate::function_name!()
    }

    struct Type;

    impl Type {
        fn method(&self) -> &'static str {
            let closure = || crate::function_name!();
            closure()
        }
    }

    async fn asynchronous() -> &'static str {
        crate::function_name!()
    }

    #[test]
    fn the_function_is_named_from_plain_functions_methods_closures_and_async_blocks() {
        assert_eq!(named_function(), "named_function");
        assert_eq!(Type.method(), "method");
        let future = asynchronous();
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        assert_eq!(
            future.as_mut().poll(&mut context),
            std::task::Poll::Ready("asynchronous")
        );
    }
}
