//! Custom ONNX models: registered by an operator with their bytes, so every replica runs the
//! same model, and read by tenants to run `predict`. Global like the catalogue they join.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::StoreError;
use crate::queries::named_query;
use crate::service::ServiceRole;
use crate::tenant::Tenant;

/// A model to register under `name`. The caller has checked that the bytes load and that
/// `inputs` matches the model's input tensor.
#[derive(Clone, Debug)]
pub struct NewCustomModel {
    pub name: String,
    pub description: Option<String>,
    /// Names of the input features, in the order of the input tensor's last axis.
    pub inputs: Vec<String>,
    pub onnx: Vec<u8>,
    /// Lowercase hex SHA-256 of `onnx`.
    pub sha256: String,
    /// The catalogue's `metadata`: what `GET /v1/models` shows about inputs and outputs.
    pub metadata: Value,
}

/// A registered custom model, without its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomModelRecord {
    pub name: String,
    pub description: Option<String>,
    pub version: i32,
    pub inputs: Vec<String>,
    pub sha256: String,
    pub size_bytes: i32,
    pub registered_at: DateTime<Utc>,
}

impl CustomModelRecord {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        Self {
            name: row.get("name"),
            description: row.get("description"),
            version: row.get("version"),
            inputs: row.get("inputs"),
            sha256: row.get("sha256"),
            size_bytes: row.get("size_bytes"),
            registered_at: row.get("registered_at"),
        }
    }
}

impl ServiceRole<'_> {
    /// Registers `model` at `now`: version 1 under a new name, the next version under the name
    /// of an existing custom model. `Conflict` when the name is a built-in model's.
    #[tracing::instrument(skip_all, fields(model = %model.name))]
    pub async fn register_custom_model(
        &self,
        model: &NewCustomModel,
        now: DateTime<Utc>,
    ) -> Result<CustomModelRecord, StoreError> {
        let row = self
            .tx
            .query_opt(
                named_query!("custom_models/register"),
                &[
                    &model.name,
                    &model.description,
                    &model.inputs,
                    &model.onnx,
                    &model.sha256,
                    &model.metadata,
                    &now,
                ],
            )
            .await?
            .ok_or_else(|| {
                StoreError::Conflict(format!(
                    "{} is a built-in model; choose another name",
                    model.name
                ))
            })?;
        Ok(CustomModelRecord::from_row(&row))
    }

    /// Every registered custom model, by name.
    pub async fn custom_models(&self) -> Result<Vec<CustomModelRecord>, StoreError> {
        let rows = self
            .tx
            .query(named_query!("custom_models/list"), &[])
            .await?;
        Ok(rows.iter().map(CustomModelRecord::from_row).collect())
    }
}

impl Tenant<'_> {
    /// The active custom model called `name`, without its bytes.
    pub async fn custom_model(&self, name: &str) -> Result<Option<CustomModelRecord>, StoreError> {
        let row = self
            .tx
            .query_opt(named_query!("custom_models/find"), &[&name])
            .await?;
        Ok(row.map(|row| CustomModelRecord::from_row(&row)))
    }

    /// The bytes of custom model `name` if its hash is still `sha256`.
    pub async fn custom_model_bytes(
        &self,
        name: &str,
        sha256: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self
            .tx
            .query_opt(named_query!("custom_models/bytes"), &[&name, &sha256])
            .await?;
        Ok(row.map(|row| row.get("onnx")))
    }
}
