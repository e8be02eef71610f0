//! [`AuditMiddleware`]: the actix `Transform` that drives the engine.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{Error, HttpMessage};
use veritrail_core::engine::Engine;

use crate::response::rejection_response;
use crate::view::ActixView;

/// A boxed future that need not be `Send` (actix runs each worker on one thread).
pub type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Authenticates every request and records it in the audit log, through an [`Engine`].
///
/// Mount with `App::wrap`. Events have exactly the shape the tower layer produces.
#[derive(Clone, Debug)]
pub struct AuditMiddleware {
    engine: Engine,
}

impl AuditMiddleware {
    /// The middleware over `engine`.
    pub fn new(engine: Engine) -> Self {
        AuditMiddleware { engine }
    }
}

impl<S, B> Transform<S, ServiceRequest> for AuditMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = AuditService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let request_id_header = HeaderName::from_bytes(self.engine.request_id_header().as_bytes())
            .unwrap_or(HeaderName::from_static("x-request-id"));
        ready(Ok(AuditService {
            service: Rc::new(service),
            engine: self.engine.clone(),
            request_id_header,
        }))
    }
}

/// The service [`AuditMiddleware`] wraps around an app.
#[derive(Debug)]
pub struct AuditService<S> {
    service: Rc<S>,
    engine: Engine,
    request_id_header: HeaderName,
}

impl<S, B> Service<ServiceRequest> for AuditService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let exchange = self.engine.start(&ActixView::new(&req));
        let request_id = HeaderValue::from_str(exchange.request_id())
            .ok()
            .map(|id| (self.request_id_header.clone(), id));
        if let Some((name, id)) = &request_id {
            req.headers_mut().insert(name.clone(), id.clone());
        }
        req.extensions_mut().insert(exchange.context().clone());
        let service = Rc::clone(&self.service);
        Box::pin(async move {
            let with_id = |mut res: ServiceResponse<EitherBody<B>>| {
                if let Some((name, id)) = &request_id
                    && !res.headers().contains_key(name)
                {
                    res.headers_mut().insert(name.clone(), id.clone());
                }
                res
            };
            if let Err(rejection) = exchange.admit().await {
                let rejection = exchange.reject(rejection).await;
                let res = req.into_response(rejection_response(&rejection));
                return Ok(with_id(res.map_into_right_body()));
            }
            if let Some(identity) = exchange.identity() {
                req.extensions_mut().insert(identity);
            }
            match service.call(req).await {
                Ok(res) => match exchange.finishing(res.status().as_u16()).await {
                    Ok(()) => Ok(with_id(res.map_into_left_body())),
                    Err(rejection) => {
                        let (req, _) = res.into_parts();
                        let res = ServiceResponse::new(req, rejection_response(&rejection));
                        Ok(with_id(res.map_into_right_body()))
                    }
                },
                Err(error) => {
                    // The error is passed on whether or not its record was taken.
                    let _ = exchange.fail().await;
                    Err(error)
                }
            }
        })
    }
}
