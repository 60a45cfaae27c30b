// Log Analytics workspace and the workspace-based Application Insights component the Functions
// host sends its logs and metrics to. Local (key-based) ingestion is off: the app authenticates
// with its managed identity (Monitoring Metrics Publisher, granted in roles.bicep).

@description('Azure region of the resources.')
param location string

@description('Prefix-free base name; resources are named log-<name> and appi-<name>.')
param name string

@description('Days Log Analytics keeps data; 30 is the free retention included in the price.')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

param tags object = {}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${name}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${name}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    // Telemetry only with an Entra token: the connection string alone cannot write to it.
    DisableLocalAuth: true
  }
}

output insightsName string = insights.name
output connectionString string = insights.properties.ConnectionString
