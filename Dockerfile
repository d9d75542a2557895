# syntax=docker/dockerfile:1
# user-service image: a builder stage generates the gRPC code and installs the
# pinned dependencies into /opt/venv; the runtime stage carries only that venv.
#
# The base is pinned to a full patch tag. The release pipeline must pin it by
# digest too (python:3.11.14-slim-bookworm@sha256:...), which cannot be looked
# up from the development machines.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src

COPY pyproject.toml constraints.txt ./
COPY protos/ protos/

# Same steps as `make gen`: the codegen extra at the pinned versions, then
# protos/generate.sh. The codegen venv stays in this stage, so grpcio-tools
# never reaches the runtime image.
RUN python -m venv /opt/codegen \
    && /opt/codegen/bin/pip install --no-cache-dir -c constraints.txt '.[codegen]' \
    && PYTHON=/opt/codegen/bin/python protos/generate.sh \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt .

# The runtime dependencies are in the layer above; a code change only
# reinstalls the project itself. The last check runs in isolated mode (-I),
# so it loads the installed package: the wheel must carry the mail templates.
COPY domain/ domain/
COPY persistence/ persistence/
COPY server/ server/
COPY datatools/ datatools/
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps -c constraints.txt . \
    && /opt/venv/bin/python -c 'import biome.user.v1.user_service_pb2_grpc, server.cli' \
    && /opt/venv/bin/python -c 'from domain.password_policy import common_passwords; assert common_passwords()' \
    && /opt/venv/bin/python -I -c 'from server.mail.templates import MailTemplates; MailTemplates()'


FROM ${PYTHON_IMAGE} AS runtime

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    USER_SERVICE_PROFILE=production \
    USER_SERVICE_HOST=0.0.0.0 \
    USER_SERVICE_HEALTH_PORT=50052

USER 10001:10001

EXPOSE 50051

# `user-service health` asks grpc.health.v1.Health/Check on the loopback-only
# plaintext health port (the service port speaks TLS in production) and exits 0
# only when the service is SERVING.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["user-service", "health"]

ENTRYPOINT ["user-service"]
CMD ["serve"]
