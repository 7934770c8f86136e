//! kxy's Rust client in a few lines: IDs of one counter from a local cache.
//!
//! Start a server with a registered counter (README, "Quick start"), then:
//!
//! ```sh
//! cargo run -p kxy-examples --bin quickstart
//! ```

use kxy_client::{
    ClientConfig, ClientError, GeneratorConfig, IdGenerator, SegmentClient, SegmentKey,
};

fn main() -> Result<(), ClientError> {
    let url = std::env::var("KXY_URL").unwrap_or_else(|_| "http://localhost:5801".into());
    let client = SegmentClient::new(ClientConfig::new([url])?)?;
    let key = SegmentKey::new("my-system", "my_database", "users", "id").expect("valid names");

    // One generator per counter; clone it into every thread that needs IDs.
    let ids = IdGenerator::new(client, key, GeneratorConfig::new(10_000)?);
    println!("first id: {}", ids.next_id()?);
    let batch = ids.next_ids(1000)?;
    println!("a batch: {} to {}", batch.start, batch.end);
    Ok(())
}
