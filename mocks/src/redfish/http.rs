//! The mock's HTTP surface: one fallback handler that applies faults, checks auth, and
//! routes by method and path over the resource map.

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use rand::Rng as _;
use serde_json::{json, Value};

use super::tree::{normalize, ROOT};
use super::{settle, Faults, Mock, Power};

pub fn router(mock: Mock) -> Router {
    Router::new().fallback(handle).with_state(mock)
}

/// A Redfish error body (DSP0266 §9.6 "Error responses").
fn error(status: StatusCode, id: &str, message: &str) -> Response {
    let body = json!({ "error": {
        "code": format!("Base.1.8.{id}"), "message": message,
        "@Message.ExtendedInfo": [{ "MessageId": format!("Base.1.8.{id}"), "Message": message }],
    }});
    (status, axum::Json(body)).into_response()
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    (status, axum::Json(value.clone())).into_response()
}

async fn handle(
    AxumState(mock): AxumState<Mock>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = normalize(uri.path());
    if let Some(control) = path.strip_prefix("/_mock/") {
        return control_api(&mock, &method, control, &body);
    }
    let faults = {
        let mut state = mock.lock();
        state.counters.requests += 1;
        state.faults.clone()
    };
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let is_root = path == ROOT || path == "/redfish";
    if take(&mock, |f| &mut f.unavailable) {
        let mut response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceTemporarilyUnavailable",
            "The service is temporarily unavailable.",
        );
        if let Ok(v) = HeaderValue::from_str(&faults.retry_after_s.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    let drop = (!is_root && take(&mock, |f| &mut f.drop))
        || (method == Method::POST
            && path.contains("/Actions/")
            && take(&mock, |f| &mut f.drop_actions));
    let response = route(&mock, &method, &path, uri.query(), &headers, &body);
    if drop {
        return dropped();
    }
    if faults.echo_credentials && !response.status().is_success() {
        return echoed(response.status(), &headers);
    }
    if method == Method::GET
        && !is_root
        && response.status() == StatusCode::OK
        && take(&mock, |f| &mut f.malformed)
    {
        return truncated(response).await;
    }
    response
}

/// An error that quotes the request's credentials.
fn echoed(status: StatusCode, headers: &HeaderMap) -> Response {
    let token = headers.get("x-auth-token").and_then(|v| v.to_str().ok());
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let message = format!(
        "request refused; X-Auth-Token: {:?}, Basic: {:?}",
        token, basic
    );
    error(status, "GeneralError", &message)
}

/// Decrement a fault counter; true when it was set.
fn take(mock: &Mock, field: impl FnOnce(&mut Faults) -> &mut u32) -> bool {
    let mut state = mock.lock();
    let counter = field(&mut state.faults);
    if *counter > 0 {
        *counter -= 1;
        true
    } else {
        false
    }
}

/// A response whose body fails: hyper aborts the connection mid-response.
fn dropped() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "mock: connection dropped",
        ))
    });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The first half of a JSON body, still labelled JSON.
async fn truncated(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let half = bytes.slice(..bytes.len() / 2);
    let mut parts = parts;
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(half))
}

fn authorized(mock: &Mock, headers: &HeaderMap) -> bool {
    if let Some(token) = headers.get("x-auth-token").and_then(|v| v.to_str().ok()) {
        return mock.lock().sessions.contains_key(token);
    }
    let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", mock.config.user, mock.config.password);
    decoded == expected.as_bytes()
}

fn route(
    mock: &Mock,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let open = (*method == Method::GET && (path == ROOT || path == "/redfish"))
        || (*method == Method::POST && path.ends_with("/SessionService/Sessions"));
    if !open && !authorized(mock, headers) {
        mock.lock().counters.unauthorized += 1;
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "NoValidSession",
            "No valid session or credentials.",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"oob-mocks\""),
        );
        return r;
    }
    match *method {
        Method::GET if path == "/redfish" => {
            json_response(StatusCode::OK, &json!({ "v1": "/redfish/v1/" }))
        }
        Method::GET => get(mock, path, query),
        Method::POST if path.ends_with("/SessionService/Sessions") => login(mock, path, body),
        Method::POST => match path.rsplit_once("/Actions/") {
            Some((system, "ComputerSystem.Reset")) => reset(mock, system, body),
            Some((service, "LogService.ClearLog")) => clear_log(mock, service),
            _ => error(
                StatusCode::NOT_FOUND,
                "ResourceMissingAtURI",
                "No such action.",
            ),
        },
        Method::DELETE => logout(mock, path),
        Method::PATCH => patch(mock, path, headers, body),
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "OperationNotAllowed",
            "Method not allowed.",
        ),
    }
}

/// `?$skip=N` of a collection page.
fn skip_of(query: Option<&str>) -> usize {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("$skip="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Cut a collection down to one page and link the next.
fn paginate(value: &mut Value, path: &str, skip: usize, size: usize) {
    let Some(members) = value.get("Members").and_then(Value::as_array).cloned() else {
        return;
    };
    if members.len() <= size && skip == 0 {
        return;
    }
    let page: Vec<Value> = members.iter().skip(skip).take(size).cloned().collect();
    value["Members"] = Value::Array(page);
    if skip + size < members.len() {
        value["Members@odata.nextLink"] = Value::String(format!("{path}?$skip={}", skip + size));
    }
}

fn get(mock: &Mock, path: &str, query: Option<&str>) -> Response {
    let mut state = mock.lock();
    let Some(mut value) = state.resources.get(path).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            "ResourceMissingAtURI",
            "No resource at this URI.",
        );
    };
    if let Some(size) = mock.config.page_size {
        paginate(&mut value, path, skip_of(query), size.max(1));
    }
    if let Some(power) = state.power.get_mut(path) {
        settle(power);
        if let Some(obj) = value.as_object_mut() {
            obj.insert("PowerState".into(), Value::String(power.state.clone()));
        }
    }
    json_response(StatusCode::OK, &value)
}

/// PATCH of a ComputerSystem: only its locator LED is writable (`LocationIndicatorActive`, or
/// `IndicatorLED` where the system has that one), as on a real BMC; any other property, a
/// wrong type or value, or a stale `If-Match` is refused with the Base registry's message.
fn patch(mock: &Mock, path: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let bad = |id: &str, message: &str| error(StatusCode::BAD_REQUEST, id, message);
    let mut state = mock.lock();
    if !state.power.contains_key(path) {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "OperationNotAllowed",
            "PATCH is not allowed on this resource.",
        );
    }
    let Some(current) = state.resources.get(path).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            "ResourceMissingAtURI",
            "No resource at this URI.",
        );
    };
    let tag = current.get("@odata.etag").and_then(Value::as_str);
    if let (Some(given), Some(tag)) = (headers.get(header::IF_MATCH), tag) {
        if given.to_str().ok() != Some(tag) {
            return error(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailed",
                "The ETag supplied did not match the ETag required to change this resource.",
            );
        }
    }
    let Ok(Value::Object(changes)) = serde_json::from_slice::<Value>(body) else {
        return bad(
            "MalformedJSON",
            "The request body submitted was malformed JSON.",
        );
    };
    let mut next = current.clone();
    for (key, value) in &changes {
        match (key.as_str(), current.get(key)) {
            ("LocationIndicatorActive", Some(_)) if value.is_boolean() => {}
            ("IndicatorLED", Some(_))
                if matches!(value.as_str(), Some("Lit" | "Blinking" | "Off")) => {}
            ("LocationIndicatorActive" | "IndicatorLED", Some(_)) => {
                return bad(
                    "PropertyValueNotInList",
                    &format!("The value {value} for the property {key} is not in the list of acceptable values."),
                )
            }
            (_, Some(_)) => {
                return bad(
                    "PropertyNotWritable",
                    &format!("The property {key} is a read only property and cannot be assigned a value."),
                )
            }
            (_, None) => {
                return bad(
                    "PropertyUnknown",
                    &format!("The property {key} is not in the list of valid properties for the resource."),
                )
            }
        }
        next[key] = value.clone();
    }
    if let Some(n) = tag.and_then(|t| {
        t.trim_start_matches("W/")
            .trim_matches('"')
            .parse::<u64>()
            .ok()
    }) {
        next["@odata.etag"] = Value::String(format!("W/\"{}\"", n + 1));
    }
    state.resources.insert(path.to_owned(), next.clone());
    json_response(StatusCode::OK, &next)
}

fn login(mock: &Mock, sessions: &str, body: &[u8]) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "MalformedJSON",
            "The request body is not JSON.",
        );
    };
    let user = request.get("UserName").and_then(Value::as_str);
    let password = request.get("Password").and_then(Value::as_str);
    if !mock.config.sessions {
        return error(
            StatusCode::NOT_FOUND,
            "ResourceMissingAtURI",
            "No session service.",
        );
    }
    if user != Some(mock.config.user.as_str()) || password != Some(mock.config.password.as_str()) {
        mock.lock().counters.unauthorized += 1;
        return error(
            StatusCode::UNAUTHORIZED,
            "NoValidSession",
            "Invalid user name or password.",
        );
    }
    let token: String = (0..32)
        .map(|_| format!("{:x}", rand::rng().random_range(0..16u8)))
        .collect();
    let mut state = mock.lock();
    let id = state.next_session;
    state.next_session += 1;
    let location = format!("{sessions}/{id}");
    state.sessions.insert(token.clone(), location.clone());
    state.counters.logins += 1;
    state.counters.issued_tokens.push(token.clone());
    let body = json!({
        "@odata.id": location, "@odata.type": "#Session.v1_3_0.Session",
        "Id": id.to_string(), "Name": "User Session", "UserName": mock.config.user,
    });
    let mut response = json_response(StatusCode::CREATED, &body);
    if let (Ok(t), Ok(l)) = (
        HeaderValue::from_str(&token),
        HeaderValue::from_str(&location),
    ) {
        response.headers_mut().insert("x-auth-token", t);
        response.headers_mut().insert(header::LOCATION, l);
    }
    response
}

fn logout(mock: &Mock, path: &str) -> Response {
    let mut state = mock.lock();
    let before = state.sessions.len();
    state.sessions.retain(|_, location| location != path);
    if state.sessions.len() == before {
        return error(
            StatusCode::NOT_FOUND,
            "ResourceMissingAtURI",
            "No such session.",
        );
    }
    state.counters.logouts += 1;
    StatusCode::NO_CONTENT.into_response()
}

fn reset(mock: &Mock, system: &str, body: &[u8]) -> Response {
    let Some(reset_type) = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("ResetType")?.as_str().map(str::to_owned))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "PropertyMissing",
            "ResetType is required.",
        );
    };
    let mut state = mock.lock();
    let allowed = allowed_reset_types(&state.resources, system);
    if !state.power.contains_key(system) {
        return error(
            StatusCode::NOT_FOUND,
            "ResourceMissingAtURI",
            "No such system.",
        );
    }
    if allowed.is_some_and(|a| !a.contains(&reset_type)) {
        return error(
            StatusCode::BAD_REQUEST,
            "ActionParameterValueNotInList",
            &format!("ResetType {reset_type} is not allowed."),
        );
    }
    state
        .counters
        .resets
        .push((system.to_owned(), reset_type.clone()));
    if state.faults.conflict_on_reset {
        return error(
            StatusCode::CONFLICT,
            "ResourceInUse",
            "The system is already in that state.",
        );
    }
    if state.faults.stuck_power
        || (state.faults.ignore_graceful && reset_type.starts_with("Graceful"))
    {
        return StatusCode::NO_CONTENT.into_response();
    }
    let delay = mock.config.power_delay;
    let Some(power) = state.power.get_mut(system) else {
        return error(
            StatusCode::NOT_FOUND,
            "ResourceMissingAtURI",
            "No such system.",
        );
    };
    settle(power);
    transition(power, &reset_type, Instant::now() + delay);
    StatusCode::NO_CONTENT.into_response()
}

/// AllowableValues of a system's Reset action, inline or through `@Redfish.ActionInfo`.
fn allowed_reset_types(
    resources: &std::collections::BTreeMap<String, Value>,
    system: &str,
) -> Option<Vec<String>> {
    let action = resources
        .get(system)?
        .pointer("/Actions/#ComputerSystem.Reset")?;
    if let Some(values) = action.get("ResetType@Redfish.AllowableValues") {
        return serde_json::from_value(values.clone()).ok();
    }
    let info = action.get("@Redfish.ActionInfo")?.as_str()?;
    resources
        .get(&normalize(info))?
        .get("Parameters")?
        .as_array()?
        .iter()
        .find(|p| p.get("Name").and_then(Value::as_str) == Some("ResetType"))
        .and_then(|p| serde_json::from_value(p.get("AllowableValues")?.clone()).ok())
}

/// What a ResetType does to the power state (sushy-emulator's fake driver behaves alike:
/// restarts read Off at once, then On after the delay).
fn transition(power: &mut Power, reset_type: &str, at: Instant) {
    let on = power.state == "On";
    match reset_type {
        "On" | "ForceOn" if !on => power.pending = Some(("On".into(), at)),
        "ForceOff" | "GracefulShutdown" if on => power.pending = Some(("Off".into(), at)),
        "ForceRestart" | "GracefulRestart" | "PowerCycle" => {
            power.state = "Off".into();
            power.pending = Some(("On".into(), at));
        }
        "PushPowerButton" => {
            let next = if on { "Off" } else { "On" };
            power.pending = Some((next.into(), at));
        }
        _ => {}
    }
}

fn clear_log(mock: &Mock, service: &str) -> Response {
    let mut state = mock.lock();
    let Some(entries) = state
        .resources
        .get(service)
        .and_then(|s| s.pointer("/Entries/@odata.id"))
        .and_then(Value::as_str)
        .map(normalize)
    else {
        return error(
            StatusCode::NOT_FOUND,
            "ResourceMissingAtURI",
            "No such log service.",
        );
    };
    if let Some(collection) = state
        .resources
        .get_mut(&entries)
        .and_then(Value::as_object_mut)
    {
        collection.insert("Members".into(), json!([]));
        collection.insert("Members@odata.count".into(), json!(0));
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `/_mock/faults` (GET, POST), `/_mock/state` (GET), `/_mock/expire-sessions` (POST).
fn control_api(mock: &Mock, method: &Method, path: &str, body: &[u8]) -> Response {
    match (method.clone(), path) {
        (Method::GET, "faults") => json_response(StatusCode::OK, &json!(mock.lock().faults)),
        (Method::POST, "faults") => match serde_json::from_slice::<Faults>(body) {
            Ok(f) => {
                mock.set_faults(f);
                StatusCode::NO_CONTENT.into_response()
            }
            Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        },
        (Method::POST, "expire-sessions") => {
            mock.expire_sessions();
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::GET, "state") => {
            let power: serde_json::Map<String, Value> = mock
                .systems()
                .into_iter()
                .filter_map(|s| Some((s.clone(), Value::String(mock.power_state(&s)?))))
                .collect();
            json_response(
                StatusCode::OK,
                &json!({ "counters": mock.counters(), "power": power }),
            )
        }
        _ => (StatusCode::NOT_FOUND, "unknown control path").into_response(),
    }
}
