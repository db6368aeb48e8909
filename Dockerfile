# Worker image for docker-compose.yml. The model is mounted at run time, never baked in or downloaded.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream ./stream
COPY schemas ./schemas
RUN pip install --no-cache-dir .
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
EXPOSE 6066
CMD ["stream", "worker"]
