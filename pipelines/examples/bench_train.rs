//! `rapport bench train` without the CLI's other dependencies:
//!
//!     cargo run -p rapport-pipelines --release --example bench_train -- BUNDLE_DIR

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bundle = std::env::args()
        .nth(1)
        .ok_or("usage: bench_train BUNDLE_DIR")?;
    let doc = rapport_pipelines::features::bench::train(std::path::Path::new(&bundle)).await?;
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
