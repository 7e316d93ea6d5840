//! Paths into an object, as the rules name them: dotted map keys, where `key[]` walks every
//! element of the list at `key` and `*` every value of the map it stands in.

use serde_json::{Map, Value};

/// Calls `visit` on every map that holds the last segment of `path`, with that segment: the
/// parent of each field the path names.
pub(super) fn parents_mut(
    value: &mut Value,
    path: &str,
    visit: &mut dyn FnMut(&mut Map<String, Value>, &str),
) {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    let Some(map) = value.as_object_mut() else {
        return;
    };
    let Some(rest) = rest else {
        if head == "*" {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                visit(map, &key);
            }
        } else {
            visit(map, head);
        }
        return;
    };
    if head == "*" {
        map.values_mut()
            .for_each(|child| parents_mut(child, rest, visit));
    } else if let Some(list) = head.strip_suffix("[]") {
        if let Some(Value::Array(items)) = map.get_mut(list) {
            items
                .iter_mut()
                .for_each(|item| parents_mut(item, rest, visit));
        }
    } else if let Some(child) = map.get_mut(head) {
        parents_mut(child, rest, visit);
    }
}

/// Removes the field at `path`.
pub(super) fn remove(value: &mut Value, path: &str) {
    parents_mut(value, path, &mut |map, key| {
        map.remove(key);
    });
}

/// Walks a plain dotted path of map keys.
pub(super) fn walk_mut<'a>(mut value: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    for key in path.split('.').filter(|k| !k.is_empty()) {
        value = value.as_object_mut()?.get_mut(key)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn walks_lists_and_map_values() {
        let mut object = json!({"spec": {"containers": [
            {"resources": {"requests": {"cpu": "1", "memory": "2"}}},
            {"resources": {"limits": {"cpu": "3"}}},
        ]}});
        let mut seen = Vec::new();
        parents_mut(
            &mut object,
            "spec.containers[].resources.requests.*",
            &mut |map, key| {
                seen.push((key.to_string(), map[key].clone()));
            },
        );
        assert_eq!(
            seen,
            [("cpu".into(), json!("1")), ("memory".into(), json!("2"))]
        );
        remove(&mut object, "spec.containers[].resources.limits");
        assert_eq!(object["spec"]["containers"][1], json!({"resources": {}}));
        remove(&mut object, "spec.nothing[].here");
        assert!(walk_mut(&mut object, "spec.containers").is_some());
    }
}
