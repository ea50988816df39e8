{{- define "replicator.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "replicator.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "replicator.selector" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{/* The pod spec of every role: the same image and config, a different sub-command. */}}
{{- define "replicator.podSpec" -}}
serviceAccountName: {{ include "replicator.fullname" .root }}
terminationGracePeriodSeconds: 60
securityContext:
  runAsNonRoot: true
  runAsUser: {{ .root.Values.securityContext.runAsUser }}
  runAsGroup: {{ .root.Values.securityContext.runAsGroup }}
  fsGroup: {{ .root.Values.securityContext.fsGroup }}
  seccompProfile: {type: RuntimeDefault}
containers:
  - name: {{ .role }}
    image: "{{ .root.Values.image.repository }}:{{ .root.Values.image.tag }}"
    imagePullPolicy: {{ .root.Values.image.pullPolicy }}
    args: {{ concat (list .command "--config" "/etc/replicator/config.yaml") (.values.args | default list) | toJson }}
    env:
      - {name: PYTHONDONTWRITEBYTECODE, value: "1"}
    {{- with .root.Values.existingSecret }}
    envFrom:
      - secretRef: {name: {{ . }}}
    {{- end }}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      runAsNonRoot: true
      capabilities: {drop: [ALL]}
    ports:
      - {name: metrics, containerPort: {{ .root.Values.config.metrics.port }}}
    {{- if .probes }}
    startupProbe:
      httpGet: {path: {{ .root.Values.probes.livenessPath }}, port: metrics}
      periodSeconds: 5
      failureThreshold: {{ .root.Values.probes.startupFailureThreshold }}
    livenessProbe:
      httpGet: {path: {{ .root.Values.probes.livenessPath }}, port: metrics}
      periodSeconds: {{ .root.Values.probes.livenessPeriodSeconds }}
    readinessProbe:
      httpGet: {path: {{ .root.Values.probes.readinessPath }}, port: metrics}
      periodSeconds: {{ .root.Values.probes.readinessPeriodSeconds }}
    {{- end }}
    resources: {{ .values.resources | toJson }}
    volumeMounts:
      - {name: config, mountPath: /etc/replicator, readOnly: true}
      - {name: tmp, mountPath: /tmp}
volumes:
  - name: config
    configMap: {name: {{ include "replicator.fullname" .root }}}
  - name: tmp
    emptyDir: {}
{{- end -}}
