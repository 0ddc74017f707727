{{/* Names and labels. */}}
{{- define "keygate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "keygate.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "keygate.labels" -}}
{{ include "keygate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The keygate config with defaults filled in (listen, admin_listen, sidecar upstream). */}}
{{- define "keygate.config" -}}
{{- /* `config` is a map, or YAML text (helm install --set-file config=keygate.yaml). */ -}}
{{- $minimal := dict "version" 1 "upstream" (dict "url" "http://backend.default.svc.cluster.local:80") "routes" (list (dict "name" "health" "path" "/healthz" "auth" "anonymous")) "unmatched" "deny" -}}
{{- $raw := .Values.config | default $minimal -}}
{{- if kindIs "string" $raw -}}
{{- $raw = fromYaml $raw -}}
{{- if hasKey $raw "Error" -}}
{{- fail (printf "config is not valid YAML: %s" (get $raw "Error")) -}}
{{- end -}}
{{- end -}}
{{- $cfg := deepCopy $raw -}}
{{- $_ := set $cfg "listen" (printf "0.0.0.0:%v" .Values.ports.http) -}}
{{- $_ := set $cfg "admin_listen" (printf "0.0.0.0:%v" .Values.ports.admin) -}}
{{- if eq .Values.mode "sidecar" -}}
{{- $_ := set $cfg "upstream" (merge (dict "url" (printf "http://127.0.0.1:%v" .Values.sidecar.backend.port)) (default dict $cfg.upstream)) -}}
{{- end -}}
{{- if .Values.forwardAuth.enabled -}}
{{- $_ := set $cfg "forward_auth" (merge (dict "listen" (printf "0.0.0.0:%v" .Values.ports.forwardAuth)) (default dict $cfg.forward_auth) (dict "front" .Values.forwardAuth.front)) -}}
{{- end -}}
{{- if .Values.sharedState.enabled -}}
{{- $s := .Values.sharedState -}}
{{- if not $s.redisUrlSecret.name -}}
{{- fail "sharedState.enabled needs sharedState.redisUrlSecret.name (a Secret holding the Redis URL)" -}}
{{- end -}}
{{- $_ := set $cfg "shared_state" (dict "redis_url" "${KEYGATE_REDIS_URL}" "key_prefix" $s.keyPrefix "timeout_ms" (int $s.timeoutMs) "on_unavailable" $s.onUnavailable) -}}
{{- end -}}
{{- if not (hasKey $cfg "shutdown_grace_seconds") -}}
{{- $_ := set $cfg "shutdown_grace_seconds" 25 -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{- define "keygate.configMapName" -}}
{{- default (printf "%s-config" (include "keygate.fullname" .)) .Values.existingConfigMap -}}
{{- end -}}

{{- define "keygate.graceSeconds" -}}
{{- $cfg := fromYaml (include "keygate.config" .) -}}
{{- int (default 25 $cfg.shutdown_grace_seconds) -}}
{{- end -}}

{{/*
Pods roll only when a field keygate cannot reload changes (its restart-only settings,
`ServerSettings::FIELDS` in src/settings.rs; .ci/chart_check.py checks each one); everything
else is hot-reloaded from the mounted ConfigMap.
*/}}
{{- define "keygate.restartChecksum" -}}
{{- $cfg := fromYaml (include "keygate.config" .) -}}
{{- $upstream := default dict $cfg.upstream -}}
{{- $forwardAuth := default dict $cfg.forward_auth -}}
{{- $revocations := default dict $cfg.revocations -}}
{{- $redisSecret := ternary .Values.sharedState.redisUrlSecret (dict) .Values.sharedState.enabled -}}
{{- list (pick $cfg "listen" "admin_listen" "tls" "shutdown_grace_seconds" "telemetry" "shared_state") (get $upstream "ca_file") (get $forwardAuth "listen") (get $revocations "file") .Values.ports $redisSecret | toJson | sha256sum -}}
{{- end -}}

{{/*
The keygate container. Include it in a pod spec's `containers:` list:
  {{- include "keygate.container" . | nindent 8 }}
*/}}
{{- define "keygate.container" -}}
- name: keygate
  image: "{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}"
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["run", "--config", "/etc/keygate/config.yaml"]
  ports:
    - { name: http, containerPort: {{ .Values.ports.http }}, protocol: TCP }
    - { name: admin, containerPort: {{ .Values.ports.admin }}, protocol: TCP }
    {{- if .Values.forwardAuth.enabled }}
    - { name: forward-auth, containerPort: {{ .Values.ports.forwardAuth }}, protocol: TCP }
    {{- end }}
  env:
    - { name: KEYGATE_LOG, value: {{ .Values.logLevel | quote }} }
    {{- if .Values.sharedState.enabled }}
    - name: KEYGATE_REDIS_URL
      valueFrom:
        secretKeyRef: { name: {{ .Values.sharedState.redisUrlSecret.name }}, key: {{ .Values.sharedState.redisUrlSecret.key }} }
    {{- end }}
    {{- range .Values.secretEnv }}
    - name: {{ .name }}
      valueFrom:
        secretKeyRef: { name: {{ .secretName }}, key: {{ .key }} }
    {{- end }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  livenessProbe:
    httpGet: { path: /healthz, port: admin }
    periodSeconds: 10
    failureThreshold: 3
  readinessProbe:
    httpGet: { path: /readyz, port: admin }
    periodSeconds: 5
    failureThreshold: 2
  {{- if .Values.forwardAuth.enabled }}
  # The forward-auth listener accepts connections before liveness checks start.
  startupProbe:
    tcpSocket: { port: forward-auth }
    periodSeconds: 2
    failureThreshold: 15
  {{- end }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - { name: keygate-config, mountPath: /etc/keygate, readOnly: true }
    - { name: keygate-tmp, mountPath: /tmp }
    {{- range .Values.secretFiles }}
    - { name: {{ printf "secret-%s" .secretName | trunc 63 | trimSuffix "-" }}, mountPath: {{ printf "/var/run/secrets/keygate/%s" .secretName }}, readOnly: true }
    {{- end }}
{{- end -}}

{{/* The volumes the keygate container mounts. */}}
{{- define "keygate.volumes" -}}
- name: keygate-config
  configMap:
    name: {{ include "keygate.configMapName" . }}
- name: keygate-tmp
  emptyDir: {}
{{- range .Values.secretFiles }}
- name: {{ printf "secret-%s" .secretName | trunc 63 | trimSuffix "-" }}
  secret:
    secretName: {{ .secretName }}
{{- end }}
{{- end -}}
