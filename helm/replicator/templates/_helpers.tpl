{{- define "replicator.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "replicator.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* One container spec per role: the same image and config, a different sub-command. */}}
{{- define "replicator.container" -}}
- name: {{ .role }}
  image: "{{ .root.Values.image.repository }}:{{ .root.Values.image.tag }}"
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  args: {{ concat (list .command "--config" "/etc/replicator/config.yaml") (.args | default list) | toJson }}
  {{- with .root.Values.envFromSecret }}
  envFrom:
    - secretRef: {name: {{ . }}}
  {{- end }}
  ports:
    - {name: metrics, containerPort: {{ .root.Values.config.metrics.port }}}
  # /metrics answers while the process runs; a stuck loop shows in the lag metrics and alerts.
  livenessProbe:
    httpGet: {path: /metrics, port: metrics}
    initialDelaySeconds: 20
    periodSeconds: 15
  readinessProbe:
    httpGet: {path: /metrics, port: metrics}
    periodSeconds: 10
  resources: {{ .resources | toJson }}
  volumeMounts:
    - {name: config, mountPath: /etc/replicator, readOnly: true}
{{- end -}}
