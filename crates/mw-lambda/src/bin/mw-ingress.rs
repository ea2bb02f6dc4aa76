//! The webhook ingress Lambda (HTTP API, payload format 2.0).

use std::sync::Arc;

use bytes::Bytes;
use lambda_http::{Body, Error, Request, Response, run, service_fn};
use mw_lambda::{IngressFunction, LambdaEnv, init_logs};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logs();
    let function = Arc::new(IngressFunction::init(&LambdaEnv::from_env()).await?);
    run(service_fn(move |request: Request| {
        let function = function.clone();
        async move {
            let (parts, body) = request.into_parts();
            let request = http::Request::from_parts(parts, Bytes::copy_from_slice(body.as_ref()));
            let (parts, body) = function.handle(request).await.into_parts();
            Ok::<_, Error>(Response::from_parts(parts, Body::from(body)))
        }
    }))
    .await
}
