//! [`ResponseFuture`]: one request through authentication, the inner service and recording.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;
use veritrail_core::engine::{
    Admission, AuditContext, EngineFuture, Exchange, Finishing, Rejection,
};
use veritrail_core::recorder::RecordError;

use crate::grpc;
use crate::response::{rejection_response, set_record_info, set_request_id};

pin_project! {
    /// The response future of [`AuditService`](crate::AuditService).
    ///
    /// Dropped before it completes (client gone, timeout), it records the request as
    /// `cancelled`.
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
        exchange: Option<Exchange>,
        context: AuditContext,
        request_id: Option<(HeaderName, HeaderValue)>,
        // A gRPC call: refusals are gRPC errors, the final `grpc-status` is recorded.
        grpc: bool,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        // Authentication, then the write-ahead record where the route asks for one.
        Authenticating {
            admission: Admission,
            request: Option<(Request<ReqBody>, S)>,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
        Finishing {
            record: Finishing,
            response: Option<S::Response>,
        },
        Failing {
            record: EngineFuture<Result<(), RecordError>>,
            error: Option<S::Error>,
        },
        Rejecting {
            record: EngineFuture<Rejection>,
        },
        Done,
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn new(
        exchange: Exchange,
        request: Request<ReqBody>,
        service: S,
        request_id: Option<(HeaderName, HeaderValue)>,
        grpc: bool,
    ) -> Self {
        ResponseFuture {
            state: State::Authenticating {
                admission: exchange.admit(),
                request: Some((request, service)),
            },
            context: exchange.context().clone(),
            exchange: Some(exchange),
            request_id,
            grpc,
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<bytes::Bytes>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Authenticating { admission, request } => {
                    match ready!(Pin::new(admission).poll(cx)) {
                        Ok(()) => {
                            let (mut req, mut service) =
                                request.take().expect("polled after ready");
                            let exchange = this.exchange.as_ref().expect("exchange present");
                            if let Some(identity) = exchange.identity() {
                                req.extensions_mut().insert(identity);
                            }
                            State::Calling {
                                future: service.call(req),
                            }
                        }
                        Err(rejection) => reject(this.exchange, rejection, *this.grpc),
                    }
                }
                StateProj::Calling { future } => {
                    let exchange = this.exchange.take().expect("exchange present");
                    match future.poll(cx) {
                        Poll::Pending => {
                            *this.exchange = Some(exchange);
                            return Poll::Pending;
                        }
                        Poll::Ready(Ok(mut response)) => {
                            let mut exchange = Some(exchange);
                            // A gRPC call whose body records it when its trailers pass.
                            if *this.grpc && grpc::defer_or_note(&mut response, &mut exchange) {
                                set_request_id(&mut response, this.request_id);
                                this.state.set(State::Done);
                                return Poll::Ready(Ok(response));
                            }
                            let exchange = exchange.expect("kept unless deferred");
                            State::Finishing {
                                record: exchange.finishing(response.status().as_u16()),
                                response: Some(response),
                            }
                        }
                        Poll::Ready(Err(error)) => State::Failing {
                            record: exchange.fail(),
                            error: Some(error),
                        },
                    }
                }
                StateProj::Finishing { record, response } => {
                    let result = ready!(Pin::new(record).poll(cx));
                    let mut response = match result {
                        Ok(()) => response.take().expect("polled after ready"),
                        // The handler ran but its record is not durable: withhold its answer.
                        Err(rejection) => refusal(&rejection, *this.grpc),
                    };
                    set_request_id(&mut response, this.request_id);
                    set_record_info(&mut response, this.context);
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(response));
                }
                StateProj::Failing { record, error } => {
                    // The inner error is returned whether or not its record was taken.
                    let _ = ready!(record.as_mut().poll(cx));
                    let error = error.take().expect("polled after ready");
                    this.state.set(State::Done);
                    return Poll::Ready(Err(error));
                }
                StateProj::Rejecting { record } => {
                    let rejection = ready!(record.as_mut().poll(cx));
                    let mut response = refusal(&rejection, *this.grpc);
                    set_request_id(&mut response, this.request_id);
                    set_record_info(&mut response, this.context);
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(response));
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            };
            this.state.set(next);
        }
    }
}

fn reject<S, ReqBody>(
    exchange: &mut Option<Exchange>,
    rejection: Rejection,
    grpc: bool,
) -> State<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    let exchange = exchange.take().expect("exchange present");
    if grpc {
        grpc::refused(exchange.context(), &rejection);
    }
    State::Rejecting {
        record: exchange.reject(rejection),
    }
}

/// A refusal as the client understands it: a gRPC error for a gRPC call, else HTTP.
fn refusal<B: From<bytes::Bytes>>(rejection: &Rejection, grpc: bool) -> Response<B> {
    if grpc {
        grpc::grpc_rejection_response(rejection)
    } else {
        rejection_response(rejection)
    }
}
