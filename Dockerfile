# pushrelay's container image: FROM scratch, the static release binary (its CA roots are built
# in), run as the non-root user 65532:65532, state in the volume /var/lib/pushrelay.
#
# Build the release tarballs first, then the image for the three platforms:
#   scripts/build-release.sh x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 -t pushrelay:0.1.0 .
# (one platform: docker build --platform linux/arm64 -t pushrelay .). Run it with a config whose
# state_dir is /var/lib/pushrelay and whose listen address, if any, is 0.0.0.0:
#   docker run -d --name pushrelay -v /etc/pushrelay:/etc/pushrelay:ro -v pushrelay-state:/var/lib/pushrelay pushrelay:0.1.0
# Without an engine, scripts/build-oci.py writes the same image as an OCI layout tarball.

# Unpacks the tarball of the platform being built (the build machine's own busybox does this).
FROM --platform=$BUILDPLATFORM busybox:1.37 AS unpack
ARG TARGETARCH
ARG TARGETVARIANT
COPY dist/ /dist/
RUN set -e; \
    case "$TARGETARCH$TARGETVARIANT" in \
      amd64) t=x86_64-unknown-linux-musl ;; \
      arm64*) t=aarch64-unknown-linux-musl ;; \
      armv7) t=armv7-unknown-linux-musleabihf ;; \
      armv6) t=arm-unknown-linux-musleabihf ;; \
      *) echo "no pushrelay build for $TARGETARCH$TARGETVARIANT" >&2; exit 1 ;; \
    esac; \
    mkdir -p /out/usr/local/bin /out/var/lib/pushrelay; \
    tar -xzf /dist/pushrelay-*-"$t".tar.gz -C /tmp; \
    cp /tmp/pushrelay-*-"$t"/pushrelay /out/usr/local/bin/pushrelay; \
    chmod 0755 /out/usr/local/bin/pushrelay; \
    chown 65532:65532 /out/var/lib/pushrelay; \
    chmod 0700 /out/var/lib/pushrelay

FROM scratch
COPY --from=unpack /out/ /
USER 65532:65532
VOLUME /var/lib/pushrelay
WORKDIR /var/lib/pushrelay
ENTRYPOINT ["/usr/local/bin/pushrelay"]
CMD ["run", "--config", "/etc/pushrelay/pushrelay.toml"]
