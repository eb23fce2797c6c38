# kube-netlab in one image: the kit, the kernel's tools and Debian's Jupyter. With no command it
# serves the notebooks on port 8888; with one it runs it (`… kube-netlab npx kube-netlab demo`).
# Labs need `--cap-add NET_ADMIN --cap-add SYS_ADMIN --security-opt systempaths=unconfined`; the
# README's "Any laptop with Docker" says why, and `npx kube-netlab doctor` checks them inside.
#
# Build with BuildKit (Docker 23 and later, Docker Desktop; `DOCKER_BUILDKIT=1` with Docker 20.10).
# A network that intercepts TLS with a CA of its own: add `--secret id=ca,src=CA-BUNDLE.pem`;
# apt and npm use it during the build only, and the image does not keep it.
ARG BASE=node:20-bookworm-slim
FROM ${BASE}

# The tools a netns lab drives, Jupyter from Debian's packages (on /usr/bin/python3), and tini,
# which reaps the lab's pod processes and passes signals on to the whole process group.
RUN --mount=type=secret,id=ca \
    set -eu; \
    ca=''; if [ -s /run/secrets/ca ]; then ca='-o Acquire::https::CAInfo=/run/secrets/ca'; fi; \
    apt-get $ca update; \
    DEBIAN_FRONTEND=noninteractive apt-get $ca install -y --no-install-recommends \
      iproute2 iptables ipset nftables conntrack ipvsadm util-linux procps \
      jupyter-nbconvert jupyter-client python3-ipykernel jupyter-notebook tini; \
    apt-get clean; rm -rf /var/lib/apt/lists/*

WORKDIR /kube-netlab
# Dependencies first, so that changing the kit does not download them again (npm's cache stays
# out of the image). Their install scripts run below, once the sources are in.
COPY package.json package-lock.json ./
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.npm \
    set -eu; \
    if [ -s /run/secrets/ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/ca; fi; \
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

COPY . .
# The build (out/build/), the tslab kernel registered under out/jupyter/, and the folders whose
# files should outlive the container (executed notebooks and figures, run folders) as links into
# /out, where `docker run -v …:/out` mounts a folder of the host.
RUN set -eu; \
    npm rebuild --no-audit --no-fund --loglevel=error; \
    npm run -s build; \
    npm run -s notebooks -- --register; \
    rm -rf out/notebooks runs; \
    ln -s /out/notebooks out/notebooks; \
    ln -s /out/runs runs; \
    install -D -m 0644 scripts/container/jupyter_notebook_config.py /etc/jupyter/jupyter_notebook_config.py

EXPOSE 8888
ENTRYPOINT ["/usr/bin/tini", "-g", "--", "/kube-netlab/scripts/container/entrypoint.sh"]
