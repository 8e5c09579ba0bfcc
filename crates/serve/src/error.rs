//! Errors: the server's own (starting it), and the answers to bad requests in OpenAI's shape.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The settings cannot work (an address that is not one, a network address without a key).
    #[error("{0}")]
    Config(String),
    /// The address is taken or not ours.
    #[error(
        "cannot listen on {addr}: {source} (another program may use the port: choose another with --port)"
    )]
    Bind {
        /// host:port.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime or its thread could not start.
    #[error("cannot start the server: {0}")]
    Start(std::io::Error),
    /// The app failed (the keyring, the index).
    #[error(transparent)]
    App(#[from] app::Error),
}

/// An OpenAI-style error answer: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400 invalid_request_error about `param`.
    pub fn param(param: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: Some(param.into()),
            code: None,
        }
    }

    /// 400 invalid_request_error about the request as a whole.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: None,
            code: None,
        }
    }

    /// 500 server_error.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            param: None,
            code: None,
        }
    }

    /// The same error with another status and code.
    pub fn with(mut self, status: StatusCode, code: &'static str) -> ApiError {
        self.status = status;
        self.code = Some(code);
        self
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }

    /// An app error met while answering: what the user can fix is a 400 or 404, the rest 500.
    pub fn from_app(e: app::Error) -> ApiError {
        let message = e.to_string();
        match e {
            app::Error::NotFound(_) => ApiError {
                status: StatusCode::NOT_FOUND,
                message,
                kind: "invalid_request_error",
                param: None,
                code: Some("not_found"),
            },
            app::Error::InvalidInput(_) | app::Error::Conflict(_) | app::Error::Data(_) => {
                ApiError::invalid(message)
            }
            _ => ApiError::internal(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}
