{{/* The release's base name: every object's name starts with it. */}}
{{- define "shepherd.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "shepherd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "shepherd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubevirt-shepherd
{{- end -}}

{{- define "shepherd.selectorLabels" -}}
app.kubernetes.io/name: kubevirt-shepherd
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "shepherd.serviceAccountName" -}}
{{- default (include "shepherd.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "shepherd.webhookService" -}}{{ include "shepherd.fullname" . }}-webhook{{- end -}}
{{- define "shepherd.tlsSecret" -}}{{ include "shepherd.fullname" . }}-tls{{- end -}}

{{- define "shepherd.identitySecret" -}}
{{- default (printf "%s-identity" (include "shepherd.fullname" .)) .Values.identityKey.existingSecret -}}
{{- end -}}

{{- define "shepherd.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* The DNS names the serving certificate is valid for: both Services, short and long. */}}
{{- define "shepherd.dnsNames" -}}
{{- $ns := .Release.Namespace -}}
{{- $names := list -}}
{{- range $svc := list (include "shepherd.webhookService" .) (include "shepherd.fullname" .) -}}
{{- $names = concat $names (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns)) -}}
{{- end -}}
{{- concat $names .Values.tls.extraDnsNames | toJson -}}
{{- end -}}

{{/* The container securityContext of every container: restricted Pod Security. */}}
{{- define "shepherd.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "shepherd.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* DATABASE_URL of the long-running process (a login role of shepherd_app). */}}
{{- define "shepherd.databaseEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "database.existingSecret is required: the Secret holding the service's DATABASE_URL" .Values.database.existingSecret }}
      key: {{ .Values.database.secretKey }}
{{- end -}}
