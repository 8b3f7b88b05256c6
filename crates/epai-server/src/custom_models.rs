//! Custom ONNX models behind `POST /v1/models/{name}/predict`: loaded from the database once per
//! replica and kept compiled, keyed by name, version and the SHA-256 of the registered bytes, so
//! a re-registered model (new bytes or new input names) is picked up on the next request and
//! the old one ages out.

use std::sync::Arc;

use axum::http::StatusCode;
use epai_domain::AuthUserId;
use epai_engine::EngineError;
use epai_engine::onnx::OnnxModel;
use epai_store::{CustomModelRecord, Store};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorCode};
use crate::predict::Prediction;

/// Compiled models this replica keeps; a registration is a few of them at most.
const CACHED_MODELS: u64 = 64;

/// Compiled custom models, shared by every request of this replica.
#[derive(Clone)]
pub struct CustomModelCache {
    compiled: moka::sync::Cache<(String, i32, String), Arc<OnnxModel>>,
}

impl Default for CustomModelCache {
    fn default() -> Self {
        Self {
            compiled: moka::sync::Cache::new(CACHED_MODELS),
        }
    }
}

/// Input of a custom ONNX model: every input named at registration, with a number.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomModelRequest {
    /// e.g. `{"recency_days": 30, "orders": 2, "spend": 40.5}`.
    #[schema(value_type = Object)]
    inputs: Map<String, Value>,
}

fn input_error(e: EngineError) -> ApiError {
    match e {
        EngineError::InvalidInput { message } => ApiError::invalid(message),
        other => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidRequest,
            other.to_string(),
        ),
    }
}

impl CustomModelCache {
    /// The compiled model of `record`, loading and compiling its bytes on first use.
    async fn model(
        &self,
        store: &Store,
        user: AuthUserId,
        record: &CustomModelRecord,
    ) -> Result<Arc<OnnxModel>, ApiError> {
        let key = (record.name.clone(), record.version, record.sha256.clone());
        if let Some(model) = self.compiled.get(&key) {
            return Ok(model);
        }
        let bytes = store
            .as_user(user, async |t| {
                t.custom_model_bytes(&record.name, &record.sha256).await
            })
            .await?
            .ok_or_else(|| {
                ApiError::unavailable("the model was re-registered during this request; retry")
            })?;
        let inputs = record.inputs.clone();
        let loaded = tokio::task::spawn_blocking(move || OnnxModel::load(&bytes, &inputs))
            .await
            .map_err(ApiError::internal)?
            // Registration checks that the bytes load; failing now is the server's fault.
            .map_err(ApiError::internal)?;
        let model = Arc::new(loaded);
        self.compiled.insert(key, model.clone());
        Ok(model)
    }
}

/// A prediction of the custom model `record` from the body's `inputs`.
pub(crate) async fn predict(
    cache: &CustomModelCache,
    store: &Store,
    user: AuthUserId,
    record: &CustomModelRecord,
    request: CustomModelRequest,
) -> Result<Prediction, ApiError> {
    let model = cache.model(store, user, record).await?;
    let row = model.row(&request.inputs).map_err(input_error)?;
    let outputs = tokio::task::spawn_blocking(move || model.run(&row))
        .await
        .map_err(ApiError::internal)?
        .map_err(input_error)?;
    let first = outputs
        .first()
        .and_then(|o| o.values.first().map(|v| (o.name.as_str(), *v)));
    let Some((first_name, value)) = first else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidRequest,
            "the model returned no values",
        ));
    };
    let named: Map<String, Value> = outputs
        .iter()
        .map(|o| (o.name.clone(), json!(o.values)))
        .collect();
    Ok(Prediction {
        value,
        confidence: None,
        explanation: format!(
            "{first_name} from custom model {} version {}",
            record.name, record.version
        ),
        details: json!({
            "version": record.version,
            "sha256": record.sha256,
            "inputs": record.inputs,
            "outputs": named,
        }),
    })
}
