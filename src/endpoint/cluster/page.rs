//! Objects as k8s-sync reads them from a server, in LIST pages and watch events: parsed
//! without their `metadata.managedFields`. Normalization drops them, and on an object written
//! by server-side apply they are the largest part of it; never building them saves their
//! parsing and freeing.

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ApiResource, DynamicResourceScope, Resource};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

/// One page of a LIST.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Page {
    /// The list's metadata: the token of the next page.
    #[serde(default)]
    pub metadata: PageMeta,
    /// The objects, without their managed fields (`null` in an empty list of some servers).
    #[serde(default)]
    pub items: Option<Vec<Item>>,
}

/// What k8s-sync reads of a list's metadata.
#[derive(Debug, Default, Deserialize)]
pub(super) struct PageMeta {
    /// The token of the next page; empty or absent on the last.
    #[serde(rename = "continue", default)]
    pub continue_token: Option<String>,
}

/// An object of a page, as a JSON value without `metadata.managedFields`.
#[derive(Debug)]
pub(super) struct Item(pub Value);

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(ObjectVisitor { top: true })
            .map(Item)
    }
}

/// Visits an object's map: at the top, its `metadata` with this visitor again; in the
/// metadata, every field but `managedFields`.
struct ObjectVisitor {
    top: bool,
}

struct Metadata(Value);

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(ObjectVisitor { top: false })
            .map(Metadata)
    }
}

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = match (self.top, key.as_str()) {
                (true, "metadata") => map.next_value::<Metadata>()?.0,
                (false, "managedFields") => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                _ => map.next_value::<Value>()?,
            };
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// An object of any kind as a watch brings it: its JSON without managed fields, for
/// normalization, and the identity kube's watcher reads (name, namespace, resourceVersion).
/// What `DynamicObject` is to kube's watcher, without building its managed fields as typed
/// metadata and then copying the whole object into a JSON tree again.
#[derive(Debug, Clone)]
pub struct ServedObject {
    identity: ObjectMeta,
    value: Value,
}

impl ServedObject {
    /// Its name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.identity.name.as_deref()
    }

    /// Its namespace, if it is namespaced.
    pub fn namespace(&self) -> Option<&str> {
        self.identity.namespace.as_deref()
    }

    /// The object, without its managed fields.
    pub fn into_value(self) -> Value {
        self.value
    }
}

impl<'de> Deserialize<'de> for ServedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Item(value) = Item::deserialize(deserializer)?;
        let field = |name: &str| {
            value
                .get("metadata")
                .and_then(|m| m.get(name))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let identity = ObjectMeta {
            name: field("name"),
            namespace: field("namespace"),
            resource_version: field("resourceVersion"),
            ..ObjectMeta::default()
        };
        Ok(ServedObject { identity, value })
    }
}

impl Resource for ServedObject {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(resource: &ApiResource) -> Cow<'_, str> {
        resource.kind.as_str().into()
    }

    fn group(resource: &ApiResource) -> Cow<'_, str> {
        resource.group.as_str().into()
    }

    fn version(resource: &ApiResource) -> Cow<'_, str> {
        resource.version.as_str().into()
    }

    fn api_version(resource: &ApiResource) -> Cow<'_, str> {
        resource.api_version.as_str().into()
    }

    fn plural(resource: &ApiResource) -> Cow<'_, str> {
        resource.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.identity
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.identity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_without_their_managed_fields_and_with_everything_else() {
        let page: Page = serde_json::from_str(
            r#"{"kind":"ConfigMapList","metadata":{"resourceVersion":"9","continue":"abc"},
                "items":[{"metadata":{"name":"a","managedFields":[{"manager":"x"}],
                                      "labels":{"managedFields":"kept"}},
                          "data":{"managedFields":"kept too"}}]}"#,
        )
        .unwrap();
        assert_eq!(page.metadata.continue_token.as_deref(), Some("abc"));
        assert_eq!(
            page.items.unwrap()[0].0,
            serde_json::json!({"metadata":{"name":"a","labels":{"managedFields":"kept"}},
                               "data":{"managedFields":"kept too"}})
        );
    }

    #[test]
    fn a_last_page_has_no_token_and_may_have_no_items() {
        let page: Page = serde_json::from_str(r#"{"metadata":{},"items":null}"#).unwrap();
        assert!(page.metadata.continue_token.is_none());
        assert!(page.items.is_none());
        let page: Page = serde_json::from_str(r#"{"metadata":{"continue":""}}"#).unwrap();
        assert!(page.items.is_none());
    }

    #[test]
    fn a_served_object_keeps_its_identity_and_drops_its_managed_fields() {
        let object: ServedObject = serde_json::from_str(
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"ns",
                "resourceVersion":"42","managedFields":[{"manager":"x"}]},"data":{"k":"v"}}"#,
        )
        .unwrap();
        assert_eq!(object.name(), Some("a"));
        assert_eq!(object.namespace(), Some("ns"));
        assert_eq!(object.meta().resource_version.as_deref(), Some("42"));
        assert_eq!(
            object.into_value(),
            serde_json::json!({"apiVersion":"v1","kind":"ConfigMap",
                "metadata":{"name":"a","namespace":"ns","resourceVersion":"42"},"data":{"k":"v"}})
        );
    }
}
