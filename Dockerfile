FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY matching matching
COPY mdm mdm
COPY publishers publishers
RUN pip install --no-cache-dir .
EXPOSE 8000
CMD ["mdm", "serve", "--host", "0.0.0.0"]
