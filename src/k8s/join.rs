//! kubeadm join primitives: a fresh bootstrap token (a Secret in kube-system, as kubeadm
//! creates it), the cluster CA from `kube-public/cluster-info`, its hash computed as kubeadm
//! does (SHA-256 of the certificate's DER SubjectPublicKeyInfo), and the join command.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret as KubeSecret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use rand::Rng as _;
use sha2::{Digest, Sha256};

use super::NodeOpsError;
use crate::secret::Secret;

/// A bootstrap token: `id.secret`, `[a-z0-9]{6}.[a-z0-9]{16}`. The secret half is a [`Secret`].
#[derive(Debug, Clone)]
pub struct BootstrapToken {
    pub id: String,
    pub secret: Secret,
    pub expiration: String,
}

impl BootstrapToken {
    pub fn token(&self) -> String {
        format!("{}.{}", self.id, self.secret.expose())
    }
}

fn random(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Create a bootstrap token valid for `ttl`, for joining nodes.
pub async fn create_token(
    client: &kube::Client,
    ttl: Duration,
) -> Result<BootstrapToken, NodeOpsError> {
    let id = random(6);
    let secret = Secret::new(random(16));
    let expires = Timestamp::now()
        .checked_add(SignedDuration::from_secs(
            i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
        ))
        .unwrap_or(Timestamp::MAX);
    let expiration = expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let field = |v: &str| ByteString(v.as_bytes().to_vec());
    let data = BTreeMap::from([
        ("token-id".to_owned(), field(&id)),
        ("token-secret".to_owned(), field(secret.expose())),
        ("expiration".to_owned(), field(&expiration)),
        ("usage-bootstrap-authentication".to_owned(), field("true")),
        ("usage-bootstrap-signing".to_owned(), field("true")),
        (
            "auth-extra-groups".to_owned(),
            field("system:bootstrappers:kubeadm:default-node-token"),
        ),
        (
            "description".to_owned(),
            field("created by oob for a node replacement"),
        ),
    ]);
    let object = KubeSecret {
        metadata: ObjectMeta {
            name: Some(format!("bootstrap-token-{id}")),
            namespace: Some("kube-system".into()),
            ..ObjectMeta::default()
        },
        type_: Some("bootstrap.kubernetes.io/token".into()),
        data: Some(data),
        ..KubeSecret::default()
    };
    let api: Api<KubeSecret> = Api::namespaced(client.clone(), "kube-system");
    api.create(&PostParams::default(), &object)
        .await
        .map_err(|e| NodeOpsError::from_kube("kube-system", "create bootstrap token in", e))?;
    Ok(BootstrapToken {
        id,
        secret,
        expiration,
    })
}

/// The API endpoint and CA certificates (DER) published in `kube-public/cluster-info`.
pub async fn cluster_info(client: &kube::Client) -> Result<(String, Vec<Vec<u8>>), NodeOpsError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-public");
    let cm = api
        .get("cluster-info")
        .await
        .map_err(|e| NodeOpsError::from_kube("kube-public/cluster-info", "read", e))?;
    let bad = |m: &str| NodeOpsError::Invalid {
        node: "kube-public/cluster-info".into(),
        message: m.into(),
    };
    let text = cm
        .data
        .and_then(|d| d.get("kubeconfig").cloned())
        .ok_or_else(|| bad("no kubeconfig key"))?;
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&text).map_err(|e| bad(&e.to_string()))?;
    let cluster = kubeconfig
        .clusters
        .first()
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| bad("no cluster"))?;
    let server = cluster.server.ok_or_else(|| bad("no server"))?;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(
            cluster
                .certificate_authority_data
                .ok_or_else(|| bad("no certificate-authority-data"))?,
        )
        .map_err(|e| bad(&e.to_string()))?;
    let ders = pem_certificates(&String::from_utf8_lossy(&pem));
    if ders.is_empty() {
        return Err(bad("no PEM certificate in certificate-authority-data"));
    }
    Ok((server.trim_start_matches("https://").to_owned(), ders))
}

/// DER bodies of the `CERTIFICATE` blocks of a PEM text.
pub fn pem_certificates(pem: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in pem.lines().map(str::trim) {
        match line {
            "-----BEGIN CERTIFICATE-----" => body = Some(String::new()),
            "-----END CERTIFICATE-----" => {
                if let Some(b) = body.take() {
                    if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b) {
                        out.push(der);
                    }
                }
            }
            l => {
                if let Some(b) = body.as_mut() {
                    b.push_str(l);
                }
            }
        }
    }
    out
}

/// One DER element: (tag, header length, content length).
fn der_element(b: &[u8]) -> Option<(u8, usize, usize)> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    if first < 0x80 {
        return Some((tag, 2, usize::from(first)));
    }
    let n = usize::from(first & 0x7F);
    if n == 0 || n > 4 {
        return None;
    }
    let len = b
        .get(2..2 + n)?
        .iter()
        .fold(0usize, |acc, x| (acc << 8) | usize::from(*x));
    Some((tag, 2 + n, len))
}

/// The DER SubjectPublicKeyInfo of an X.509 certificate (the 7th element of tbsCertificate,
/// counting the optional `[0] version`).
pub fn subject_public_key_info(cert: &[u8]) -> Option<&[u8]> {
    let (tag, h, _) = der_element(cert)?;
    if tag != 0x30 {
        return None;
    }
    let tbs = &cert[h..];
    let (tag, h, len) = der_element(tbs)?;
    if tag != 0x30 {
        return None;
    }
    let mut rest = tbs.get(h..h + len)?;
    let mut index = 0;
    while !rest.is_empty() {
        let (tag, h, len) = der_element(rest)?;
        let whole = rest.get(..h + len)?;
        if tag == 0xA0 {
            rest = &rest[h + len..];
            continue; // [0] version does not count
        }
        if index == 5 {
            return (tag == 0x30).then_some(whole);
        }
        index += 1;
        rest = &rest[h + len..];
    }
    None
}

/// `sha256:<hex>` as `kubeadm join --discovery-token-ca-cert-hash` wants it.
pub fn ca_cert_hash(cert_der: &[u8]) -> Option<String> {
    let spki = subject_public_key_info(cert_der)?;
    let hex: String = Sha256::digest(spki)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(format!("sha256:{hex}"))
}

/// `kubeadm join …` for a new node (token created now, valid for `ttl`).
pub async fn join_command(
    client: &kube::Client,
    ttl: Duration,
) -> Result<(String, BootstrapToken), NodeOpsError> {
    let (endpoint, cas) = cluster_info(client).await?;
    let hashes: Vec<String> = cas.iter().filter_map(|c| ca_cert_hash(c)).collect();
    if hashes.is_empty() {
        return Err(NodeOpsError::Invalid {
            node: "kube-public/cluster-info".into(),
            message: "the CA certificate has no SubjectPublicKeyInfo".into(),
        });
    }
    let token = create_token(client, ttl).await?;
    let flags: String = hashes
        .iter()
        .map(|h| format!(" --discovery-token-ca-cert-hash {h}"))
        .collect();
    Ok((
        format!("kubeadm join {endpoint} --token {}{flags}", token.token()),
        token,
    ))
}

/// The cluster's side of a replacement, behind a seam for fakes: discovery (endpoint and CA
/// hashes), bootstrap tokens (minted, and found again by id after a crash: the secret half
/// is never journaled), and the labels and annotations restored on the rejoined Node.
#[async_trait::async_trait]
pub trait Rejoin: Send + Sync {
    /// The API endpoint and the `sha256:` hashes of the cluster's CA certificates.
    async fn discovery(&self) -> Result<(String, Vec<String>), NodeOpsError>;
    /// A fresh bootstrap token valid for `ttl`.
    async fn mint(&self, ttl: Duration) -> Result<BootstrapToken, NodeOpsError>;
    /// The token with this id, while its Secret exists.
    async fn token(&self, id: &str) -> Result<Option<BootstrapToken>, NodeOpsError>;
    /// Merge these labels and annotations into the Node (taints go through `NodeOps`).
    async fn restore(
        &self,
        node: &str,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Result<(), NodeOpsError>;
}

/// [`Rejoin`] over the API server.
pub struct KubeRejoin(pub kube::Client);

#[async_trait::async_trait]
impl Rejoin for KubeRejoin {
    async fn discovery(&self) -> Result<(String, Vec<String>), NodeOpsError> {
        let (endpoint, cas) = cluster_info(&self.0).await?;
        let hashes: Vec<String> = cas.iter().filter_map(|c| ca_cert_hash(c)).collect();
        if hashes.is_empty() {
            return Err(NodeOpsError::Invalid {
                node: "kube-public/cluster-info".into(),
                message: "the CA certificate has no SubjectPublicKeyInfo".into(),
            });
        }
        Ok((endpoint, hashes))
    }

    async fn mint(&self, ttl: Duration) -> Result<BootstrapToken, NodeOpsError> {
        create_token(&self.0, ttl).await
    }

    async fn token(&self, id: &str) -> Result<Option<BootstrapToken>, NodeOpsError> {
        let api: Api<KubeSecret> = Api::namespaced(self.0.clone(), "kube-system");
        let name = format!("bootstrap-token-{id}");
        let found = api
            .get_opt(&name)
            .await
            .map_err(|e| NodeOpsError::from_kube(&name, "read", e))?;
        let Some(data) = found.and_then(|s| s.data) else {
            return Ok(None);
        };
        let text = |k: &str| {
            data.get(k)
                .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        };
        Ok(match (text("token-secret"), text("expiration")) {
            (Some(secret), expiration) => Some(BootstrapToken {
                id: id.to_owned(),
                secret: Secret::new(secret),
                expiration: expiration.unwrap_or_default(),
            }),
            _ => None,
        })
    }

    async fn restore(
        &self,
        node: &str,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Result<(), NodeOpsError> {
        let api: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.0.clone());
        let patch = serde_json::json!({"metadata": {"labels": labels, "annotations": annotations}});
        api.patch(
            node,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .map_err(|e| NodeOpsError::from_kube(node, "restore labels on", e))?;
        Ok(())
    }
}
