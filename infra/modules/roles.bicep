// Least-privilege data-plane roles for the app's system-assigned identity: what the Functions
// host and the worker need on the data account, and telemetry publishing to Application Insights.

@description('Principal (object) id of the app identity.')
param principalId string

@description('Name of the data storage account the roles are scoped to.')
param dataAccountName string

@description('Name of the Application Insights component.')
param insightsName string

resource data 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: dataAccountName
}

resource insights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: insightsName
}

// Built-in role definition ids (the same in every tenant).
var storageRoles = [
  // Storage Blob Data Owner: host locks and keys, the task hub's large-message and artifact
  // containers (created by the worker at start-up).
  'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // Storage Queue Data Contributor: queue triggers, the poison queues, the task hub's queues.
  '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  // Storage Table Data Contributor: the task hub's history and instance tables, host
  // diagnostic events.
  '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
]
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource storageAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in storageRoles: {
  name: guid(data.id, principalId, role)
  scope: data
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

resource telemetryAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, principalId, monitoringMetricsPublisher)
  scope: insights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
