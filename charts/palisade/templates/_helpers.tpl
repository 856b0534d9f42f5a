{{/*
Prefix of every object name. Deliberately not derived from the release name: the chart owns
cluster-wide objects (CRDs, the webhook configuration, a ClusterRole), so one Palisade runs
per cluster, and the default names are the ones the operator itself defaults to.
*/}}
{{- define "palisade.fullname" -}}
{{- default "palisade" .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "palisade.operatorName" -}}
{{- printf "%s-operator" (include "palisade.fullname" .) -}}
{{- end -}}

{{- define "palisade.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "palisade.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The MutatingWebhookConfiguration; the operator keeps its caBundle current in selfManaged mode. */}}
{{- define "palisade.webhookConfigurationName" -}}
{{- include "palisade.fullname" . -}}
{{- end -}}

{{- define "palisade.certificateName" -}}
{{- printf "%s-webhook" (include "palisade.fullname" .) -}}
{{- end -}}

{{- define "palisade.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "palisade.labels" -}}
helm.sh/chart: {{ include "palisade.chart" . }}
app.kubernetes.io/name: palisade
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: palisade
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selects the operator pods (Deployment, Service, PDB, anti-affinity). Never change: selectors are immutable. */}}
{{- define "palisade.selectorLabels" -}}
app.kubernetes.io/name: palisade
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "palisade.operatorLabels" -}}
{{ include "palisade.labels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* repository:tag, or repository@digest when a digest is given. Argument: dict "image" <values.image> "root" $ */}}
{{- define "palisade.image" -}}
{{- $image := .image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .root.Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The operator's --webhook-tls value for the chart's webhook.tls.mode. */}}
{{- define "palisade.webhookTlsMode" -}}
{{- if eq .Values.webhook.tls.mode "certManager" -}}
cert-manager
{{- else if eq .Values.webhook.tls.mode "selfManaged" -}}
self-managed
{{- else -}}
{{- fail (printf "webhook.tls.mode must be selfManaged or certManager, not %q" .Values.webhook.tls.mode) -}}
{{- end -}}
{{- end -}}

{{/*
ResourceRequirements as JSON with every quantity a string. The operator parses this with the
Kubernetes API types, where a quantity is a string; `--set sidecar.resources.limits.cpu=1` or
`cpu: 1` in a values file would otherwise arrive as a number.
*/}}
{{- define "palisade.resourcesJson" -}}
{{- $out := dict -}}
{{- range $section, $content := . -}}
{{- if and (has $section (list "limits" "requests")) (kindIs "map" $content) -}}
{{- $quantities := dict -}}
{{- range $name, $quantity := $content -}}
{{- $_ := set $quantities $name (toString $quantity) -}}
{{- end -}}
{{- $_ := set $out $section $quantities -}}
{{- else -}}
{{- $_ := set $out $section $content -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}
