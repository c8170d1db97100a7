#!/bin/sh
# Build a Kong STAND-IN image on a test host: `sh kong_standin.sh TAG` (root; needs busybox-static).
# The real image cannot be pulled on these machines. This one only mimics the outside of Kong that
# the deploy relies on: `kong config parse FILE` (accepts a file with _format_version "2.1" and
# without the word BROKEN), `kong reload` (re-reads the file, counts reloads in /tmp/reloads), and
# an admin API on KONG_ADMIN_LISTEN (and the same pages on KONG_PROXY_LISTEN) answering
# /upstreams/backend-cluster/health, /services, /plugins and /status with the targets found in the
# mounted kong.yml. It proves nothing about Kong's own behaviour.
set -eu
tag=$1
work=$(mktemp -d)
mkdir -p "$work/bin" "$work/usr/local/bin" "$work/tmp"
cp /bin/busybox "$work/bin/busybox"
for tool in sh grep sed cat mkdir echo httpd sleep date tr; do ln -s busybox "$work/bin/$tool"; done
cat > "$work/usr/local/bin/kong" <<'KONG'
#!/bin/sh
publish() {
    mkdir -p /admin/upstreams/backend-cluster
    targets=$(grep -o '"[0-9.]*:[0-9]*"' "$KONG_DECLARATIVE_CONFIG" | sed 's/.*/{"target":&,"weight":100,"health":"HEALTHY"}/' | tr '\n' ',' | sed 's/,$//')
    echo "{\"data\":[$targets],\"next\":null}" > /admin/upstreams/backend-cluster/health
    echo '{"data":[{"name":"backend-service","protocol":"http","host":"backend-cluster","retries":5,"connect_timeout":60000,"read_timeout":60000,"write_timeout":60000}],"next":null}' > /admin/services
    echo '{"data":[{"name":"rate-limiting","enabled":true},{"name":"correlation-id","enabled":true}],"next":null}' > /admin/plugins
    echo '{"server":{"total_requests":0,"connections_active":1,"connections_accepted":1},"database":{"reachable":true}}' > /admin/status
}
case "$1" in
    config)
        if grep -q '^_format_version: "2.1"' "$3" && ! grep -q BROKEN "$3"; then
            echo "parse successful"
        else
            echo "Error: Failed parsing: $3: stand-in rejects this file" >&2
            exit 1
        fi ;;
    reload)
        publish
        echo reload >> /tmp/reloads
        echo "Kong reloaded" ;;
    docker-start)
        publish
        # Where real Kong listens: its *_LISTEN variables (first address of each).
        httpd -p "${KONG_PROXY_LISTEN%%[ ,]*}" -h /admin
        exec httpd -f -p "${KONG_ADMIN_LISTEN%%[ ,]*}" -h /admin ;;
    *)
        echo "stand-in kong: unsupported: $*" >&2
        exit 2 ;;
esac
KONG
chmod 755 "$work/usr/local/bin/kong"
chmod 1777 "$work/tmp"
tar -C "$work" -cf "$work.tar" .
docker import --change 'CMD ["/usr/local/bin/kong", "docker-start"]' \
    --change 'ENV PATH=/usr/local/bin:/bin' "$work.tar" "$tag" >/dev/null
rm -rf "$work" "$work.tar"
echo "built stand-in $tag"
