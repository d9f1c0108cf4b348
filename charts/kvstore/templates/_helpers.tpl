{{/*
Helpers of the kvstore chart. Every name starts with `kvstore.`.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "kvstore.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* `<release>-<chart>` (just the release name when it contains the chart name), or fullnameOverride. */}}
{{- define "kvstore.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Namespace of the release's objects. */}}
{{- define "kvstore.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{/* `<chart>-<version>` for the helm.sh/chart label. */}}
{{- define "kvstore.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object: the standard ones plus commonLabels. */}}
{{- define "kvstore.labels" -}}
helm.sh/chart: {{ include "kvstore.chart" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kvstore
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* `annotations:` with commonAnnotations and the dict given as .extra ("" when both are empty). */}}
{{- define "kvstore.metadataAnnotations" -}}
{{- $all := merge (dict) (.extra | default dict) (.root.Values.commonAnnotations | default dict) -}}
{{- with $all -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* Name of the operator's objects. */}}
{{- define "kvstore.operator.fullname" -}}
{{- printf "%s-operator" (include "kvstore.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of the operator pods (never changed by an upgrade). */}}
{{- define "kvstore.operator.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-operator" (include "kvstore.name" .) }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of the operator's objects. */}}
{{- define "kvstore.operator.labels" -}}
{{ include "kvstore.labels" . }}
{{ include "kvstore.operator.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* The operator's ServiceAccount. */}}
{{- define "kvstore.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "kvstore.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The leader-election Lease (in the release namespace). */}}
{{- define "kvstore.operator.leaseName" -}}
{{- default (include "kvstore.operator.fullname" .) .Values.operator.leaderElection.leaseName -}}
{{- end -}}

{{/* An image reference from a dict with registry, repository, tag, digest; .default tag when tag is empty. */}}
{{- define "kvstore.imageRef" -}}
{{- $repo := .image.repository -}}
{{- if .image.registry -}}
{{- $repo = printf "%s/%s" .image.registry .image.repository -}}
{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .defaultTag .image.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/* The operator image. */}}
{{- define "kvstore.operator.image" -}}
{{- include "kvstore.imageRef" (dict "image" .Values.image "defaultTag" .Chart.AppVersion) -}}
{{- end -}}

{{/* The node image: cluster.image when it names a repository, else the operator image with cluster.image.tag or .digest when set. */}}
{{- define "kvstore.cluster.image" -}}
{{- $c := .Values.cluster.image -}}
{{- if $c.repository -}}
{{- include "kvstore.imageRef" (dict "image" $c "defaultTag" .Chart.AppVersion) -}}
{{- else -}}
{{- $digest := .Values.image.digest -}}
{{- if or $c.tag $c.digest -}}
{{- $digest = $c.digest -}}
{{- end -}}
{{- $img := dict "registry" .Values.image.registry "repository" .Values.image.repository "tag" (default .Values.image.tag $c.tag) "digest" $digest -}}
{{- include "kvstore.imageRef" (dict "image" $img "defaultTag" .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* Name of the KVCluster (also its StatefulSet and client Service). */}}
{{- define "kvstore.cluster.name" -}}
{{- default (include "kvstore.fullname" .) .Values.cluster.name -}}
{{- end -}}

{{/* Selector labels of the KVCluster's node pods, as the operator sets them (operator/controller/names.ts). */}}
{{- define "kvstore.cluster.selectorLabels" -}}
app.kubernetes.io/name: kvstore
app.kubernetes.io/instance: {{ include "kvstore.cluster.name" . }}
{{- end -}}

{{/* Labels of the KVCluster and the chart's objects about its nodes. */}}
{{- define "kvstore.cluster.labels" -}}
{{ include "kvstore.labels" . }}
app.kubernetes.io/name: kvstore
app.kubernetes.io/instance: {{ include "kvstore.cluster.name" . }}
app.kubernetes.io/component: cluster
{{- end -}}

{{/* Labels of the chart's monitoring objects (rules, dashboard). */}}
{{- define "kvstore.monitoring.labels" -}}
{{ include "kvstore.labels" . }}
app.kubernetes.io/name: {{ include "kvstore.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: monitoring
{{- end -}}

{{/* Fails with every problem in the values that the schema cannot express. */}}
{{- define "kvstore.validateValues" -}}
{{- $errors := list -}}
{{- $c := .Values.cluster -}}
{{- if $c.enabled -}}
{{- $name := include "kvstore.cluster.name" . -}}
{{- if gt (len $name) 52 -}}
{{- $errors = append $errors (printf "cluster.name: %q is longer than 52 characters (set cluster.name or fullnameOverride)" $name) -}}
{{- end -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name) -}}
{{- $errors = append $errors (printf "cluster.name: %q is not a DNS-1035 label (lower case letters, digits, -; starts with a letter)" $name) -}}
{{- end -}}
{{- if gt (int $c.readQuorum) (int $c.replicationFactor) -}}
{{- $errors = append $errors (printf "cluster.readQuorum (%d) must not exceed cluster.replicationFactor (%d)" (int $c.readQuorum) (int $c.replicationFactor)) -}}
{{- end -}}
{{- if gt (int $c.writeQuorum) (int $c.replicationFactor) -}}
{{- $errors = append $errors (printf "cluster.writeQuorum (%d) must not exceed cluster.replicationFactor (%d)" (int $c.writeQuorum) (int $c.replicationFactor)) -}}
{{- end -}}
{{- if and (le (add (int $c.readQuorum) (int $c.writeQuorum)) (int $c.replicationFactor)) (not $c.allowStaleReads) -}}
{{- $errors = append $errors (printf "cluster.readQuorum (%d) + cluster.writeQuorum (%d) must exceed cluster.replicationFactor (%d), or a read may miss an acknowledged write: raise a quorum, or set cluster.allowStaleReads=true to accept stale reads" (int $c.readQuorum) (int $c.writeQuorum) (int $c.replicationFactor)) -}}
{{- end -}}
{{- if gt (int $c.replicationFactor) (int $c.replicas) -}}
{{- $errors = append $errors (printf "cluster.replicationFactor (%d) must not exceed cluster.replicas (%d): lower replicationFactor, readQuorum and writeQuorum with it" (int $c.replicationFactor) (int $c.replicas)) -}}
{{- end -}}
{{- if or (eq (int $c.ports.client) (int $c.ports.http)) (eq (int $c.ports.client) (int $c.ports.peer)) (eq (int $c.ports.http) (int $c.ports.peer)) -}}
{{- $errors = append $errors "cluster.ports: client, http and peer must differ" -}}
{{- end -}}
{{- end -}}
{{- if and (gt (int .Values.operator.replicas) 1) (not .Values.operator.leaderElection.enabled) -}}
{{- $errors = append $errors (printf "operator.replicas is %d but operator.leaderElection.enabled is false: several operators would reconcile at once" (int .Values.operator.replicas)) -}}
{{- end -}}
{{- $le := .Values.operator.leaderElection -}}
{{- if and $le.enabled (ge (int $le.renewDeadlineMs) (int $le.leaseDurationMs)) -}}
{{- $errors = append $errors "operator.leaderElection.renewDeadlineMs must be less than leaseDurationMs" -}}
{{- end -}}
{{- if and .Values.operator.metrics.serviceMonitor.enabled .Values.operator.metrics.podMonitor.enabled -}}
{{- $errors = append $errors "operator.metrics: enable serviceMonitor or podMonitor, not both (the operator would be scraped twice)" -}}
{{- end -}}
{{- if and $c.enabled $c.metrics.serviceMonitor.enabled $c.metrics.podMonitor.enabled -}}
{{- $errors = append $errors "cluster.metrics: enable serviceMonitor or podMonitor, not both (the nodes would be scraped twice)" -}}
{{- end -}}
{{- if and (not .Values.operator.serviceAccount.create) (not .Values.operator.serviceAccount.name) .Values.rbac.create -}}
{{- $errors = append $errors "operator.serviceAccount.name is needed when operator.serviceAccount.create is false" -}}
{{- end -}}
{{- if $errors -}}
{{- fail (printf "\n\nkvstore: invalid values:\n  - %s\n" (join "\n  - " $errors)) -}}
{{- end -}}
{{- end -}}
