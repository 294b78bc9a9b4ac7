//! The client the proxy forwards with: the crate's low-level [`crate::http_client`], re-exported
//! under the proxy's name for the tests and benches that build one.

pub use crate::http_client::{UpstreamClient, client, client_with};
