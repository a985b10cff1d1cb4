{{/*
Every Weir service: its name (as in the image and console script weir-<name>) -> its key under
.Values. Templates range over this one list, so adding a service is one line here plus values.
*/}}
{{- define "weir.components" -}}
k8s-watcher: k8sWatcher
identity-allocator: identityAllocator
policy-compiler: policyCompiler
lb-programmer: lbProgrammer
bandwidth-manager: bandwidthManager
node-loader: nodeLoader
{{- end }}

{{/* The services that run as Deployments (all but the per-node loader). */}}
{{- define "weir.clusterComponents" -}}
{{- $out := dict -}}
{{- range $name, $key := include "weir.components" . | fromYaml -}}
{{- if ne $name "node-loader" -}}
{{- $_ := set $out $name $key -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end }}

{{- define "weir.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/* Release-scoped prefix of every object's name; "weir" alone when the release is named so. */}}
{{- define "weir.fullname" -}}
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
{{- end }}

{{/* Name of one component's objects. Call with (dict "root" $ "name" "k8s-watcher"). */}}
{{- define "weir.componentName" -}}
{{- printf "%s-%s" (include "weir.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{- define "weir.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "weir.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: weir
{{- end }}

{{- define "weir.selectorLabels" -}}
app.kubernetes.io/name: {{ include "weir.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* A component's block of values, e.g. .Values.k8sWatcher for "k8s-watcher". */}}
{{- define "weir.values" -}}
{{- $key := index (include "weir.components" .root | fromYaml) .name -}}
{{- toYaml (index .root.Values $key) -}}
{{- end }}

{{/* Where every service finds NATS. */}}
{{- define "weir.natsUrl" -}}
{{- if .Values.nats.enabled -}}
{{- printf "nats://%s.%s.svc:4222" (include "weir.componentName" (dict "root" . "name" "nats")) .Release.Namespace -}}
{{- else -}}
{{- required "nats.url is required when nats.enabled is false" .Values.nats.url -}}
{{- end -}}
{{- end }}

{{/*
A service's config.yaml: chart-computed settings < global.config < <service>.config. The keys
are the service's own setting names, so weir.config.load reads this file as it is.
*/}}
{{- define "weir.config" -}}
{{- $values := include "weir.values" . | fromYaml -}}
{{- $base := dict "nats_url" (include "weir.natsUrl" .root) "health_host" "0.0.0.0" -}}
{{- $config := mustMergeOverwrite $base (deepCopy .root.Values.global.config) (deepCopy ($values.config | default dict)) -}}
{{- toYaml $config -}}
{{- end }}

{{- define "weir.healthPort" -}}
{{- (include "weir.config" . | fromYaml).health_port | int -}}
{{- end }}

{{/* registry/weir-<name>:<tag>; the tag falls back to image.tag, then the chart's appVersion. */}}
{{- define "weir.image" -}}
{{- $values := include "weir.values" . | fromYaml -}}
{{- $tag := default (default .root.Chart.AppVersion .root.Values.image.tag) (($values.image | default dict).tag) -}}
{{- $repo := printf "weir-%s" .name -}}
{{- if .root.Values.image.registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .root.Values.image.registry) $repo -}}
{{- end -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end }}

{{/* Environment every Weir container gets: its settings file, tracing, extra variables. */}}
{{- define "weir.env" -}}
{{- $values := include "weir.values" . | fromYaml -}}
- name: WEIR_CONFIG
  value: /etc/weir
{{- with .root.Values.global.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- with .root.Values.global.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with $values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Health and metrics port, and the probes on it. */}}
{{- define "weir.healthContainer" -}}
ports:
  - name: health
    containerPort: {{ include "weir.healthPort" . }}
    protocol: TCP
livenessProbe:
  httpGet:
    path: /healthz
    port: health
  periodSeconds: 10
  timeoutSeconds: 5
  # A restart loses in-memory state and replays it all; only restart a process that is stuck.
  failureThreshold: 6
readinessProbe:
  httpGet:
    path: /readyz
    port: health
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
{{- end }}

{{/*
With global.hostNetwork every enabled service binds its health port on the node, next to NATS
and node-loader: two services on one port could never share a node. Fail early instead.
*/}}
{{- define "weir.checkHostPorts" -}}
{{- if .Values.global.hostNetwork -}}
{{- $seen := dict -}}
{{- if .Values.nats.enabled -}}
{{- $_ := set $seen "4222" "nats" -}}
{{- $_ := set $seen "8222" "nats" -}}
{{- end -}}
{{- range $name, $key := include "weir.components" . | fromYaml -}}
{{- if (index $.Values $key).enabled -}}
{{- $port := include "weir.healthPort" (dict "root" $ "name" $name) -}}
{{- if hasKey $seen $port -}}
{{- fail (printf "global.hostNetwork: %s and %s both use port %s on the node; give each service its own health_port" (get $seen $port) $name $port) -}}
{{- end -}}
{{- $_ := set $seen $port $name -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/*
node-loader's directories from the host, from its settings: the endpoint socket's directory,
the CNI config directory (an emptyDir of the pod's own unless cni.install, so no runtime reads
the conflist) and the IPAM directory's parent (read-only: only the plugin on the host writes
there). Each is mounted at its host path, since the conflist node-loader writes names them.
One volume per distinct path; a path the pod already mounts otherwise is an error.
*/}}
{{- define "weir.nodeLoaderHostDirs" -}}
{{- $cfg := include "weir.config" . | fromYaml -}}
{{- $socket := required "nodeLoader.config.socket_path is required" $cfg.socket_path -}}
{{- $confDir := required "nodeLoader.config.cni_conf_dir is required" $cfg.cni_conf_dir -}}
{{- $ipam := required "nodeLoader.config.ipam_dir is required" $cfg.ipam_dir -}}
{{- $wanted := list
  (dict "name" "weir-run" "path" (dir $socket) "readOnly" false "emptyDir" false "setting" "socket_path")
  (dict "name" "cni-conf" "path" $confDir "readOnly" false "emptyDir" (not .root.Values.cni.install) "setting" "cni_conf_dir")
  (dict "name" "weir-lib" "path" (dir $ipam) "readOnly" true "emptyDir" false "setting" "ipam_dir") -}}
{{- $fixed := list "/etc/weir" "/sys/fs/bpf" "/sys/fs/cgroup" "/lib/modules" "/usr/src" "/run/netns" -}}
{{- $out := list -}}
{{- $byPath := dict -}}
{{- range $wanted -}}
{{- if has .path $fixed -}}
{{- fail (printf "nodeLoader.config.%s: node-loader already mounts %s for something else" .setting .path) -}}
{{- end -}}
{{- $seen := get $byPath .path -}}
{{- if $seen -}}
{{- if ne $seen.emptyDir .emptyDir -}}
{{- fail (printf "nodeLoader.config.%s and %s share %s, which must come from the host for one and not the other" $seen.setting .setting .path) -}}
{{- end -}}
{{- if not .readOnly -}}
{{- $_ := set $seen "readOnly" false -}}
{{- end -}}
{{- else -}}
{{- $_ := set $byPath .path . -}}
{{- $out = append $out . -}}
{{- end -}}
{{- end -}}
{{- range $out -}}
{{- $_ := unset . "setting" -}}
{{- end -}}
{{- toYaml $out -}}
{{- end }}
