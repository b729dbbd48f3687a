FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY outpost ./outpost
RUN pip install --no-cache-dir . && useradd --uid 10001 --no-create-home outpost
USER 10001
EXPOSE 3333
ENTRYPOINT ["outpost"]
CMD ["all"]
