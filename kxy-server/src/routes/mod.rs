//! HTTP routes, one module per area. Each exposes `routes()` with its paths
//! side by side, and thin handlers: parse, call a service, answer.

pub mod health;
pub mod segments;
