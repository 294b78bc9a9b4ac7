//! The token vault: everything secret that keygate keeps (OAuth tokens, API keys, client
//! secrets, signing keys, pending consent tokens), sealed under a key hierarchy ([`keys`],
//! [`seal`]) and bound to its owner so isolation is structural.

pub mod keys;
pub mod seal;
pub mod store;

pub use keys::{Kek, KeyError, KeyRing};
pub use seal::{Owner, SealError};
pub use store::{Entry, Store, StoreError};
