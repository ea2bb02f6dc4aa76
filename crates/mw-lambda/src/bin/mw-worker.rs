//! The SQS worker Lambda (FIFO event source, partial batch responses).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use mw_lambda::{LambdaEnv, WorkerFunction, init_logs};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logs();
    let function = Arc::new(WorkerFunction::init(&LambdaEnv::from_env()).await?);
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let function = function.clone();
        async move {
            let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or_default();
            let deadline = Instant::now()
                + Duration::from_millis(event.context.deadline.saturating_sub(now_ms));
            Ok::<_, Error>(function.handle(event.payload, Some(deadline)).await)
        }
    }))
    .await
}
