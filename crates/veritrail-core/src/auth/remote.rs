//! Remote key sources: JWKS URLs and OpenID Connect discovery.
