//! Private macros shared by the layers.

/// The `get_ref` / `get_mut` / `into_inner` trio of a service that wraps its inner service in a
/// field named `inner` of type `$T`.
macro_rules! inner_accessors {
    ($T:ident) => {
        /// The inner service.
        pub fn get_ref(&self) -> &$T {
            &self.inner
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut $T {
            &mut self.inner
        }

        /// Gives back the inner service.
        pub fn into_inner(self) -> $T {
            self.inner
        }
    };
}
