{{/*
Names. Every object is "<release>-<part>"; the hub finds its own Service by LAVAHUB_HUB_SERVICE.
*/}}
{{- define "lavahub.name" -}}
{{- printf "%s-%s" .root.Release.Name .part | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lavahub.labels" -}}
app.kubernetes.io/name: lavahub
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .part }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "lavahub.selector" -}}
app.kubernetes.io/name: lavahub
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .part }}
{{- end -}}

{{/* Where the hub keeps its SQLite databases and generated files: the hub's claim. */}}
{{- define "lavahub.dataDir" -}}/srv/lavahub{{- end -}}
{{- define "lavahub.secretsDir" -}}/etc/lavahub/secrets{{- end -}}

{{/*
The platform config (lavahub.yaml) the hub runs: .Values.platform as given, with what only the
chart knows filled in. A key the chart owns is set here whatever the values say; values.schema.json
refuses the ones a user must not set (backend, data_dir, bind, a shared password, an inline client
secret).
*/}}
{{- define "lavahub.platform" -}}
{{- $p := deepCopy .Values.platform -}}
{{- $_ := set $p "backend" "kubernetes" -}}
{{- $_ := set $p "data_dir" (include "lavahub.dataDir" .) -}}
{{- $_ := set $p "bind" "0.0.0.0" -}}
{{- $k := get $p "kubernetes" | default dict -}}
{{- if not (hasKey $k "namespace") -}}
{{- $_ := set $k "namespace" .Release.Namespace -}}
{{- end -}}
{{- $_ := set $p "kubernetes" $k -}}
{{- if not $p.projects -}}
{{- $_ := set $p "projects" (dict "default" (dict "members" ($p.admins | default (list "admin")))) -}}
{{- end -}}
{{- range $name, $project := $p.projects -}}
{{- if not (hasKey $project "queue") -}}
{{- $_ := set $project "queue" $name -}}
{{- end -}}
{{- end -}}
{{- $auth := get $p "auth" | default dict -}}
{{- if eq (get $auth "type" | default "local") "oauth" -}}
{{- $oauth := get $auth "oauth" | default dict -}}
{{- $_ := set $oauth "client_secret_file" (printf "%s/oidc-client-secret" (include "lavahub.secretsDir" .)) -}}
{{- $_ := set $auth "oauth" $oauth -}}
{{- end -}}
{{- $_ := set $p "auth" $auth -}}
{{- toYaml $p -}}
{{- end -}}

{{/* The platform config as the chart runs it, parsed back (for the templates that read it). */}}
{{- define "lavahub.platformValues" -}}
{{- include "lavahub.platform" . | fromYaml | toJson -}}
{{- end -}}

{{/* The platform's ports, with the platform config's defaults: hub, jobs, templates, proxy, proxyApi. */}}
{{- define "lavahub.ports" -}}
{{- $p := include "lavahub.platformValues" . | fromJson -}}
{{- toJson (dict
  "hub" ($p.hub_port | default 8081)
  "jobs" ((get ($p.jobs | default dict) "port") | default 8082)
  "templates" ((get ($p.templates_service | default dict) "port") | default 8083)
  "proxy" ($p.port | default 8000)
  "proxyApi" ($p.proxy_api_port | default 8001)) -}}
{{- end -}}

{{/* The namespace of workspaces and of jobs (jobs.volcano.namespace, else the workspaces'). */}}
{{- define "lavahub.workspaceNamespace" -}}
{{- $p := include "lavahub.platformValues" . | fromJson -}}
{{- $p.kubernetes.namespace -}}
{{- end -}}
{{- define "lavahub.jobsNamespace" -}}
{{- $p := include "lavahub.platformValues" . | fromJson -}}
{{- $volcano := (get ($p.jobs | default dict) "volcano") | default dict -}}
{{- get $volcano "namespace" | default $p.kubernetes.namespace -}}
{{- end -}}

{{/* A secret value: the given one, else the one this release already has, else a new random one. */}}
{{- define "lavahub.secretValue" -}}
{{- if .given -}}
{{- .given | b64enc -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace (include "lavahub.name" (dict "root" .root "part" "secret")) -}}
{{- if and $existing (hasKey ($existing.data | default dict) .key) -}}
{{- index $existing.data .key -}}
{{- else -}}
{{- randAlphaNum 64 | sha256sum | b64enc -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "lavahub.hubImage" -}}
{{- printf "%s:%s" .Values.hub.image.repository .Values.hub.image.tag -}}
{{- end -}}

{{/* The hub's environment: where it finds its config, its Service, the proxy, and its secrets. */}}
{{- define "lavahub.hubEnv" -}}
{{- $ports := include "lavahub.ports" . | fromJson -}}
{{- $secret := include "lavahub.name" (dict "root" . "part" "secret") -}}
- {name: LAVAHUB_CONFIG, value: /etc/lavahub/lavahub.yaml}
# where workspace pods and the proxy reach the hub and its services
- {name: LAVAHUB_HUB_SERVICE, value: {{ include "lavahub.name" (dict "root" . "part" "hub") }}}
# the proxy runs in its own pod: the hub only configures it
- name: LAVAHUB_PROXY_API_URL
  value: http://{{ include "lavahub.name" (dict "root" . "part" "proxy-api") }}:{{ $ports.proxyApi }}
- name: JPY_COOKIE_SECRET
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: cookie-secret}}
- name: CONFIGPROXY_AUTH_TOKEN
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: proxy-token}}
{{- if eq .Values.hub.db.type "postgresql" }}
- name: LAVAHUB_HUB_DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: hub-database-url}}
- name: LAVAHUB_DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: database-url}}
{{- end }}
{{- end -}}

{{- define "lavahub.hubMounts" -}}
- {name: config, mountPath: /etc/lavahub/lavahub.yaml, subPath: lavahub.yaml, readOnly: true}
- {name: config, mountPath: /etc/lavahub/jupyterhub_config.py, subPath: jupyterhub_config.py, readOnly: true}
- {name: data, mountPath: {{ include "lavahub.dataDir" . }}}
- {name: tmp, mountPath: /tmp}
{{- if eq .Values.platform.auth.type "oauth" }}
- {name: secrets, mountPath: {{ include "lavahub.secretsDir" . }}, readOnly: true}
{{- end }}
{{- end -}}

{{/* The secrets the values give (not those generated at install): a change restarts the hub. */}}
{{- define "lavahub.givenSecrets" -}}
{{- toJson (list .Values.hub.cookieSecret .Values.proxy.secretToken .Values.oidc .Values.hub.db) -}}
{{- end -}}
