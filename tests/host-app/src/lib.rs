//! A stand-in for an application that depends on tower-opik with its default features and
//! on its own reqwest with `default-features = false, features = ["json"]`. Its test
//! (`tests/own_client.rs`) checks that the application's `reqwest::Client::new()` still
//! works: no feature of tower-opik reaches the application's reqwest.

/// The application's own HTTP client, built the way applications do.
///
/// ```
/// let _client = tower_opik_host_app::own_client();
/// ```
pub fn own_client() -> reqwest::Client {
    reqwest::Client::new()
}
