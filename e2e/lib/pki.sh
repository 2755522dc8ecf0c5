# Certificates and kubeconfigs for the local cluster, sourced by e2e/cluster.sh and e2e/node.sh.
# Needs: $state (the cluster's state dir; certificates live in $state/pki) and, for
# write_kubeconfig, $APISERVER_PORT.
# shellcheck shell=bash

gen_key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1" 2>/dev/null; }

# gen_ca NAME CN: a self-signed CA.
gen_ca() {
  local pki=$state/pki
  gen_key "$pki/$1.key"
  openssl req -x509 -new -key "$pki/$1.key" -subj "/CN=$2" -days 30 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$pki/$1.crt" 2>/dev/null
}

# sign NAME SUBJECT EXTENSIONS [CA]: a certificate signed by the cluster CA (or by CA).
sign() {
  local name=$1 subject=$2 ext=$3 ca=${4:-ca} pki=$state/pki
  gen_key "$pki/$name.key"
  openssl req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

# write_kubeconfig NAME CERT_NAME: a kubeconfig for the API server with a client certificate.
write_kubeconfig() {
  local file=$state/$1.kubeconfig pki=$state/pki
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: modelserver-e2e
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $1
  user:
    client-certificate-data: $(base64 -w0 "$pki/$2.crt")
    client-key-data: $(base64 -w0 "$pki/$2.key")
contexts:
- name: modelserver-e2e
  context:
    cluster: modelserver-e2e
    user: $1
current-context: modelserver-e2e
EOF
  chmod 600 "$file"
}
