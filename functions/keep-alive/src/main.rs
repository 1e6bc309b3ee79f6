#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    keep_alive::serve().await
}
